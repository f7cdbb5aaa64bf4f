//! The image config's `User` (config.md: "user, uid, user:group,
//! uid:gid, uid:group, user:gid") as numeric ids. Names are looked up in
//! the image's own /etc/passwd and /etc/group: the file of the topmost
//! layer that has it, as overlayfs would show it (a whiteout deletes it, an
//! opaque /etc hides the lower layers), read component by component with
//! O_NOFOLLOW: a symlink the image made is never followed.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstatat};

use super::unpack::{OPAQUE_XATTR, get_xattr};
use super::{Image, ImageError};

/// What one layer has at a path.
enum Found {
    File(Vec<u8>),
    /// Deleted (a whiteout) or hidden (a non-directory on the way).
    Gone,
    /// Not in this layer; `true` when an opaque directory on the way hides
    /// the layers below.
    Absent(bool),
}

fn is_whiteout(st: &nix::sys::stat::FileStat) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR && st.st_rdev == 0
}

/// Looks up `etc/NAME` in one layer dir.
fn in_layer(dir: &Path, comps: &[&str]) -> Result<Found, String> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut cur: OwnedFd = nix::fcntl::open(dir, flags | OFlag::O_DIRECTORY, Mode::empty())
        .map_err(|e| format!("open {}: {e}", dir.display()))?;
    let mut opaque = false;
    for (i, c) in comps.iter().enumerate() {
        let st = match fstatat(&cur, *c, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(Found::Absent(opaque)),
            Err(e) => {
                return Err(format!(
                    "stat {}: {e}",
                    dir.join(comps[..=i].join("/")).display()
                ));
            }
        };
        let fmt = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let last = i + 1 == comps.len();
        if fmt == SFlag::S_IFLNK {
            return Err(format!(
                "/{} is a symlink in the image; cuddy does not follow it",
                comps[..=i].join("/")
            ));
        }
        if is_whiteout(&st) {
            return Ok(Found::Gone);
        }
        let want = if last { SFlag::S_IFREG } else { SFlag::S_IFDIR };
        if fmt != want {
            return Ok(Found::Gone);
        }
        let extra = if last {
            OFlag::empty()
        } else {
            OFlag::O_DIRECTORY
        };
        cur = openat(&cur, *c, flags | extra, Mode::empty())
            .map_err(|e| format!("open /{}: {e}", comps[..=i].join("/")))?;
        if last {
            let mut buf = Vec::new();
            std::fs::File::from(cur)
                .take(4 << 20)
                .read_to_end(&mut buf)
                .map_err(|e| format!("read /{}: {e}", comps.join("/")))?;
            return Ok(Found::File(buf));
        }
        opaque |= get_xattr(&cur, OPAQUE_XATTR)
            .ok()
            .flatten()
            .is_some_and(|v| v == b"y");
    }
    Ok(Found::Gone)
}

/// The merged view's `/etc/<name>`, or `None`.
fn read_etc(image: &Image, name: &str) -> Result<Option<Vec<u8>>, String> {
    for dir in image.layers.iter().rev() {
        match in_layer(dir, &["etc", name])? {
            Found::File(b) => return Ok(Some(b)),
            Found::Gone | Found::Absent(true) => return Ok(None),
            Found::Absent(false) => {}
        }
    }
    Ok(None)
}

/// `name:x:id:gid...` lines: the entry whose field `key` (0 name, 2 id)
/// equals `want`; returns its fields.
fn lookup<'a>(text: &'a str, key: usize, want: &str) -> Option<Vec<&'a str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && f[key] == want)
}

pub fn resolve(image: &Image) -> Result<Option<(u32, u32)>, ImageError> {
    let Some(user) = image.config.user.as_deref().filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let err = |why: String| ImageError::User {
        digest: image.digest.clone(),
        user: user.into(),
        why,
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = read_etc(image, "passwd").map_err(&err)?;
    let passwd = passwd.as_deref().map(String::from_utf8_lossy);
    let (uid, pgid) = match u.parse::<u32>() {
        Ok(uid) => {
            // A uid not in /etc/passwd runs with gid 0 (runc, Docker).
            let gid = passwd
                .as_deref()
                .and_then(|p| lookup(p, 2, u))
                .and_then(|f| f[3].parse().ok())
                .unwrap_or(0);
            (uid, gid)
        }
        Err(_) => {
            let p = passwd
                .as_deref()
                .ok_or_else(|| err("the image has no /etc/passwd".into()))?;
            let f = lookup(p, 0, u)
                .ok_or_else(|| err(format!("no user {u:?} in the image's /etc/passwd")))?;
            let id = |s: &str| {
                s.parse::<u32>()
                    .map_err(|_| err(format!("bad /etc/passwd entry for {u:?}")))
            };
            (id(f[2])?, id(f[3])?)
        }
    };
    let gid = match g {
        None => pgid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = read_etc(image, "group").map_err(&err)?;
                let group = group.ok_or_else(|| err("the image has no /etc/group".into()))?;
                let group = String::from_utf8_lossy(&group);
                let f = lookup(&group, 0, g)
                    .ok_or_else(|| err(format!("no group {g:?} in the image's /etc/group")))?;
                f[2].parse()
                    .map_err(|_| err(format!("bad /etc/group entry for {g:?}")))?
            }
        },
    };
    Ok(Some((uid, gid)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::image::ImageConfig;

    fn layer(root: &Path, name: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
        let d = root.join(name);
        std::fs::create_dir_all(d.join("etc")).unwrap();
        for (f, text) in files {
            std::fs::write(d.join("etc").join(f), text).unwrap();
        }
        d
    }

    fn image(layers: Vec<std::path::PathBuf>, user: &str) -> Image {
        Image {
            digest: "sha256:test".into(),
            layers,
            config: ImageConfig {
                user: Some(user.into()),
                ..ImageConfig::default()
            },
        }
    }

    #[test]
    fn user_forms_resolve_from_the_topmost_passwd() {
        let t = tempfile::tempdir().unwrap();
        let low = layer(
            t.path(),
            "l1",
            &[
                (
                    "passwd",
                    "root:x:0:0::/root:/bin/sh\nold:x:7:7::/:/bin/sh\n",
                ),
                ("group", "root:x:0:\nstaff:x:50:\n"),
            ],
        );
        let top = layer(
            t.path(),
            "l2",
            &[(
                "passwd",
                "root:x:0:0::/root:/bin/sh\napp:x:1234:2345::/:/bin/sh\n",
            )],
        );
        let ls = vec![low, top];
        let r = |u: &str| resolve(&image(ls.clone(), u));
        assert_eq!(r("app").unwrap(), Some((1234, 2345)));
        assert_eq!(r("1234").unwrap(), Some((1234, 2345)));
        assert_eq!(r("4242").unwrap(), Some((4242, 0)));
        assert_eq!(r("app:staff").unwrap(), Some((1234, 50)));
        assert_eq!(r("0:99").unwrap(), Some((0, 99)));
        assert_eq!(r("1234:staff").unwrap(), Some((1234, 50)));
        // The upper layer's passwd replaces the lower one whole.
        let e = r("old").unwrap_err().to_string();
        assert!(
            e.contains("no user \"old\" in the image's /etc/passwd"),
            "{e}"
        );
        let e = r("app:nogroup").unwrap_err().to_string();
        assert!(e.contains("no group \"nogroup\""), "{e}");
        assert_eq!(resolve(&image(ls.clone(), "")).unwrap(), None);
    }

    #[test]
    fn whiteouts_and_symlinks_are_honoured_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let low = layer(t.path(), "l1", &[("passwd", "app:x:1:1::/:/bin/sh\n")]);
        let top = layer(t.path(), "l2", &[]);
        std::os::unix::fs::symlink("/etc/passwd", top.join("etc/passwd")).unwrap();
        let e = resolve(&image(vec![low.clone(), top.clone()], "app")).unwrap_err();
        assert!(e.to_string().contains("is a symlink in the image"), "{e}");
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        std::fs::remove_file(top.join("etc/passwd")).unwrap();
        // An overlayfs whiteout (char 0:0) deletes the lower file.
        nix::sys::stat::mknod(
            &top.join("etc/passwd"),
            SFlag::S_IFCHR,
            Mode::empty(),
            nix::sys::stat::makedev(0, 0),
        )
        .unwrap();
        let e = resolve(&image(vec![low, top], "app")).unwrap_err();
        assert!(
            e.to_string().contains("the image has no /etc/passwd"),
            "{e}"
        );
    }
}
