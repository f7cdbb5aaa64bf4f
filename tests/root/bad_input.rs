//! Bad input: a clear error (what, which field or path, why), exit 1, and
//! nothing left behind.
