//! The D-Bus wire format (the D-Bus specification, "Message Protocol"):
//! values, their signatures, and marshalling in little-endian byte order.
//!
//! Facts the code depends on:
//! - every value is aligned to its natural size *relative to the message start*
//!   (y/g/v: 1, n/q: 2, b/i/u/s/o/a: 4, x/t/d/struct/dict-entry: 8); the body
//!   starts at an 8-aligned offset, so a body can be encoded on its own;
//! - `s`/`o` are a u32 byte length, the UTF-8 bytes and a NUL; `g` the same with
//!   a one-byte length;
//! - an array is a u32 byte length, padding to the element's alignment (also
//!   when empty), then the elements; the length excludes that padding;
//! - a variant is a signature (`g`) holding one complete type, then the value.

/// A D-Bus value (only the types the systemd driver needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `y`
    Byte(u8),
    /// `b`
    Bool(bool),
    /// `i`
    I32(i32),
    /// `u`
    U32(u32),
    /// `x`
    I64(i64),
    /// `t`
    U64(u64),
    /// `s`
    Str(String),
    /// `o`
    Path(String),
    /// `g`
    Sig(String),
    /// `a<elem>`: the element signature, then the elements.
    Array(String, Vec<Value>),
    /// `(...)`
    Struct(Vec<Value>),
    /// `v`
    Variant(Box<Value>),
    /// `h`: an index into the message's passed file descriptors.
    UnixFd(u32),
}

/// Errors of the wire format: what could not be encoded or decoded, and why.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// A signature is malformed or uses a type this client does not implement.
    #[error("D-Bus signature {sig:?}: {reason}")]
    Signature { sig: String, reason: String },
    /// The bytes end before the value does, or hold an invalid value.
    #[error("D-Bus message: {reason} (at byte {offset})")]
    Decode { offset: usize, reason: String },
    /// A value cannot be encoded (e.g. an array element of the wrong type).
    #[error("D-Bus value: {reason}")]
    Encode { reason: String },
}

impl Value {
    /// The value's signature (one complete type).
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::Variant(_) => "v".into(),
            Value::UnixFd(_) => "h".into(),
        }
    }

    /// The string inside `s`, `o` or `g`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    /// The number inside `u`.
    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U32(n) => Some(*n),
            _ => None,
        }
    }
}

/// The alignment of a type, from the first character of its signature.
fn alignment(sig_first: u8) -> usize {
    match sig_first {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

/// Split off the first complete type of a signature: `("a(sv)", "s")` from `"a(sv)s"`.
pub fn split_first(sig: &str) -> Result<(&str, &str), WireError> {
    let bad = |reason: &str| WireError::Signature {
        sig: sig.to_string(),
        reason: reason.to_string(),
    };
    let bytes = sig.as_bytes();
    let mut i = 0;
    // Leading `a`s prefix the element type.
    while i < bytes.len() && bytes[i] == b'a' {
        i += 1;
    }
    let Some(&c) = bytes.get(i) else {
        return Err(bad("ends inside a type"));
    };
    let end = match c {
        b'y' | b'b' | b'i' | b'u' | b'x' | b't' | b's' | b'o' | b'g' | b'v' | b'h' => i + 1,
        b'(' | b'{' => {
            let close = if c == b'(' { b')' } else { b'}' };
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match bytes.get(j) {
                    None => return Err(bad("unbalanced brackets")),
                    Some(&b) if b == c => depth += 1,
                    Some(&b) if b == close => {
                        depth -= 1;
                        if depth == 0 {
                            break j + 1;
                        }
                    }
                    Some(_) => {}
                }
                j += 1;
            }
        }
        _ => return Err(bad("unsupported type code")),
    };
    Ok((&sig[..end], &sig[end..]))
}

/// A little-endian encoder; offsets (for alignment) count from the buffer start.
#[derive(Debug, Default)]
pub struct Encoder {
    /// The bytes written so far.
    pub buf: Vec<u8>,
}

impl Encoder {
    fn pad(&mut self, align: usize) {
        while self.buf.len() % align != 0 {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, n: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.u32(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn sig(&mut self, s: &str) -> Result<(), WireError> {
        let len = u8::try_from(s.len()).map_err(|_| WireError::Encode {
            reason: format!("signature {s:?} is longer than 255 bytes"),
        })?;
        self.buf.push(len);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        Ok(())
    }

    /// Append one value.
    pub fn put(&mut self, v: &Value) -> Result<(), WireError> {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I32(n) => {
                self.pad(4);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U32(n) | Value::UnixFd(n) => self.u32(*n),
            Value::I64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::Str(s) | Value::Path(s) => self.string(s),
            Value::Sig(s) => self.sig(s)?,
            Value::Array(elem, items) => self.array(elem, items)?,
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.put(f)?;
                }
            }
            Value::Variant(inner) => {
                self.sig(&inner.signature())?;
                self.put(inner)?;
            }
        }
        Ok(())
    }

    fn array(&mut self, elem: &str, items: &[Value]) -> Result<(), WireError> {
        self.u32(0);
        let len_at = self.buf.len() - 4;
        self.pad(alignment(elem.as_bytes().first().copied().unwrap_or(b'y')));
        let start = self.buf.len();
        for item in items {
            if item.signature() != elem {
                return Err(WireError::Encode {
                    reason: format!("array of {elem:?} holds a {:?}", item.signature()),
                });
            }
            self.put(item)?;
        }
        let len = u32::try_from(self.buf.len() - start).map_err(|_| WireError::Encode {
            reason: "array longer than 4 GiB".into(),
        })?;
        self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }
}

/// A little-endian decoder over a byte slice whose offset 0 is 8-aligned.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    /// The current offset.
    pub pos: usize,
}

impl<'a> Decoder<'a> {
    /// Decode from `buf`, starting at offset 0.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    fn err(&self, reason: impl Into<String>) -> WireError {
        WireError::Decode {
            offset: self.pos,
            reason: reason.into(),
        }
    }

    fn align(&mut self, align: usize) -> Result<(), WireError> {
        let next = self.pos.div_ceil(align) * align;
        if next > self.buf.len() {
            return Err(self.err("padding runs past the end"));
        }
        self.pos = next;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.err(format!("{n} bytes needed, the message ends")));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        self.align(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn text(&mut self, len: usize) -> Result<String, WireError> {
        let bytes = self.take(len)?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| self.err("a string is not UTF-8"))?
            .to_string();
        if self.take(1)? != [0] {
            return Err(self.err("a string lacks its NUL"));
        }
        Ok(s)
    }

    /// Decode every value of `sig` (a sequence of complete types).
    pub fn get_all(&mut self, mut sig: &str) -> Result<Vec<Value>, WireError> {
        let mut out = Vec::new();
        while !sig.is_empty() {
            let (first, rest) = split_first(sig)?;
            out.push(self.get(first)?);
            sig = rest;
        }
        Ok(out)
    }

    /// Decode one value of the complete type `sig`.
    pub fn get(&mut self, sig: &str) -> Result<Value, WireError> {
        let first = sig.as_bytes().first().copied().unwrap_or(0);
        Ok(match first {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match u32::from_le_bytes(self.fixed()?) {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => return Err(self.err(format!("boolean {n} is neither 0 nor 1"))),
            },
            b'i' => Value::I32(i32::from_le_bytes(self.fixed()?)),
            b'u' => Value::U32(u32::from_le_bytes(self.fixed()?)),
            b'h' => Value::UnixFd(u32::from_le_bytes(self.fixed()?)),
            b'x' => Value::I64(i64::from_le_bytes(self.fixed()?)),
            b't' => Value::U64(u64::from_le_bytes(self.fixed()?)),
            b's' | b'o' => {
                let len = u32::from_le_bytes(self.fixed()?) as usize;
                let s = self.text(len)?;
                if first == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => {
                let len = usize::from(self.take(1)?[0]);
                Value::Sig(self.text(len)?)
            }
            b'v' => {
                let Value::Sig(inner) = self.get("g")? else {
                    return Err(self.err("variant without a signature"));
                };
                let (one, rest) = split_first(&inner)?;
                if !rest.is_empty() {
                    return Err(self.err(format!("variant signature {inner:?} is not one type")));
                }
                Value::Variant(Box::new(self.get(one)?))
            }
            b'(' | b'{' => {
                self.align(8)?;
                Value::Struct(self.get_all(&sig[1..sig.len() - 1])?)
            }
            b'a' => self.array(&sig[1..])?,
            _ => return Err(self.err(format!("unsupported signature {sig:?}"))),
        })
    }

    fn array(&mut self, elem: &str) -> Result<Value, WireError> {
        let len = u32::from_le_bytes(self.fixed()?) as usize;
        self.align(alignment(elem.as_bytes().first().copied().unwrap_or(b'y')))?;
        let end = self.pos.checked_add(len).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(self.err(format!("array of {len} bytes runs past the end")));
        };
        let mut items = Vec::new();
        while self.pos < end {
            items.push(self.get(elem)?);
        }
        if self.pos != end {
            return Err(self.err("array elements overrun the array length"));
        }
        Ok(Value::Array(elem.to_string(), items))
    }
}
