//! Which image of a layout or tarball that holds several: `PATH:NAME`, as
//! skopeo's `oci:PATH:NAME` and podman's `oci-archive:PATH:NAME` write it.
//!
//! A name matches an image-layout `index.json` entry by its
//! `org.opencontainers.image.ref.name` annotation (image-layout.md
//! "index.json file"; skopeo writes the NAME given, Docker ≥ 25 the tag)
//! or `io.containerd.image.name` (containerd and Docker ≥ 25: the full
//! reference), and a legacy `docker save` entry by its `RepoTags`. A full
//! reference also matches in Docker's short form (`busybox:latest` for
//! `docker.io/library/busybox:latest`), and a name without a tag matches
//! its `:latest`.

use std::path::{Path, PathBuf};

/// The annotations that name an image in an index (see the module doc).
pub const NAME_ANNOTATIONS: [&str; 2] = [
    "org.opencontainers.image.ref.name",
    "io.containerd.image.name",
];

/// Splits `PATH:NAME`. `arg` is a plain path when it exists; otherwise
/// the first `:` whose left part exists splits it (a directory named
/// with colons stays usable: its own name exists). A path that neither
/// exists nor splits is returned whole, for the import to report.
pub fn split(arg: &Path) -> (PathBuf, Option<String>) {
    let whole = || (arg.to_path_buf(), None);
    if arg.symlink_metadata().is_ok() {
        return whole();
    }
    let Some(s) = arg.to_str() else {
        return whole();
    };
    for (i, _) in s.match_indices(':') {
        let (path, name) = (&s[..i], &s[i + 1..]);
        if !path.is_empty() && !name.is_empty() && Path::new(path).symlink_metadata().is_ok() {
            return (PathBuf::from(path), Some(name.to_string()));
        }
    }
    whole()
}

/// Docker's short form of a reference on Docker Hub.
fn familiar(name: &str) -> &str {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
}

/// Does `wanted` (what the user wrote) name the image called `name`?
pub fn matches(wanted: &str, name: &str) -> bool {
    if wanted == name || wanted == familiar(name) {
        return true;
    }
    // No tag and no digest after the last `/`: Docker's default tag.
    let last = wanted.rsplit('/').next().unwrap_or(wanted);
    if last.contains(':') || last.contains('@') {
        return false;
    }
    let tagged = format!("{wanted}:latest");
    tagged == name || tagged == familiar(name)
}

/// "names: a, b" for an error, or a note that the entries have none.
pub fn listing(names: &[String]) -> String {
    if names.is_empty() {
        "its entries carry no names".into()
    } else {
        format!("names: {}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_as_docker_and_skopeo_write_them() {
        assert!(matches("v2", "v2"));
        assert!(matches(
            "busybox:latest",
            "docker.io/library/busybox:latest"
        ));
        assert!(matches("busybox", "docker.io/library/busybox:latest"));
        assert!(matches("me/app:1", "docker.io/me/app:1"));
        assert!(matches("busybox", "busybox:latest"));
        assert!(!matches("busybox:1", "docker.io/library/busybox:latest"));
        assert!(!matches("busy", "busybox"));
        assert!(!matches("reg:5000/app", "reg:5000/app:1"));
    }

    #[test]
    fn split_prefers_an_existing_path() {
        let d = tempfile::tempdir().unwrap();
        let plain = d.path().join("layout");
        std::fs::create_dir(&plain).unwrap();
        let colon = d.path().join("a:b");
        std::fs::create_dir(&colon).unwrap();
        let s = |p: String| split(Path::new(&p));
        assert_eq!(split(&plain), (plain.clone(), None));
        assert_eq!(split(&colon), (colon.clone(), None));
        let p = plain.display();
        assert_eq!(s(format!("{p}:v2")), (plain.clone(), Some("v2".into())));
        assert_eq!(
            s(format!("{p}:docker.io/library/busybox:latest")),
            (
                plain.clone(),
                Some("docker.io/library/busybox:latest".into())
            )
        );
        assert_eq!(
            s(format!("{}:x", colon.display())),
            (colon.clone(), Some("x".into()))
        );
        let missing = d.path().join("missing:v2");
        assert_eq!(split(&missing), (missing.clone(), None));
        assert_eq!(s(format!("{p}:")), (PathBuf::from(format!("{p}:")), None));
    }
}
