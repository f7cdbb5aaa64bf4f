//! One image of several in a layout or tarball, chosen by name as
//! `PATH:NAME` (docs/images.md): image-layout.md "index.json file"
//! (`org.opencontainers.image.ref.name`, as skopeo writes it;
//! `io.containerd.image.name`, as Docker ≥ 25 does) and a legacy
//! `docker save` manifest.json's `RepoTags`.

use std::path::Path;

use serde_json::json;

use crate::common::*;
use crate::image::mkimage::*;
use crate::image::{assert_empty_cache, cuddy_image, store};
use crate::require_root;

/// Two runnable images over the fixture, differing in `/which`.
struct Two {
    tars: [Vec<Vec<u8>>; 2],
    configs: [Vec<u8>; 2],
}

fn two_images() -> Two {
    let base = tar_dir(fixture_rootfs());
    let tars = ["a", "b"].map(|w| vec![base.clone(), tar_of(&[Ent::File("which", w.as_bytes())])]);
    let configs = [0, 1].map(|i| {
        let layers: Vec<Layer> = tars[i].iter().map(|t| Layer::new(TAR, t.clone())).collect();
        config(&layers, json!({"Cmd": ["cat", "/which"]}))
    });
    Two { tars, configs }
}

/// A layout holding both: the first named `v1` (skopeo's way), the second
/// `v2` and `docker.io/library/app:v2` (Docker ≥ 25's way). Returns the
/// manifest digests.
fn write_two_layout(dir: &Path, two: &Two) -> [String; 2] {
    let layers = |i: usize| -> Vec<Layer> {
        two.tars[i]
            .iter()
            .map(|t| Layer::new(GZIP, t.clone()))
            .collect()
    };
    let (la, lb) = (layers(0), layers(1));
    let (ma, mb) = (
        manifest(&la, &two.configs[0]),
        manifest(&lb, &two.configs[1]),
    );
    let da = write_layout(dir, &la, &two.configs[0], &ma, false);
    let db = write_layout(dir, &lb, &two.configs[1], &mb, false);
    write_index(
        dir,
        &[
            (&ma, json!({"org.opencontainers.image.ref.name": "v1"})),
            (
                &mb,
                json!({"org.opencontainers.image.ref.name": "v2",
                       "io.containerd.image.name": "docker.io/library/app:v2"}),
            ),
        ],
    );
    [da, db]
}

/// `PATH:NAME` by each kind of name; no name or a wrong one is refused
/// listing the names, importing nothing; `import_named` takes the path as
/// it is; `ls` shows which name was imported.
#[test]
fn one_image_of_a_layout_is_chosen_by_name() {
    require_root!();
    let (d, s) = store();
    let two = two_images();
    let dir = d.path().join("two");
    let [da, db] = write_two_layout(&dir, &two);
    let at = |name: &str| format!("{}:{name}", dir.display());
    let e = s.import(&dir).unwrap_err().to_string();
    for n in [
        "lists 2 images",
        "choose one as PATH:NAME",
        "v1",
        "docker.io/library/app:v2",
    ] {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
    let e = s.import(at("v3")).unwrap_err().to_string();
    assert!(
        e.contains("two: not an image: no image named \"v3\" in its index.json (names: v1, v2, docker.io/library/app:v2)"),
        "{e}"
    );
    assert_empty_cache(s.root());
    assert_eq!(s.import(at("v1")).unwrap().digest, da);
    for name in ["v2", "app:v2", "docker.io/library/app:v2"] {
        assert_eq!(s.import(at(name)).unwrap().digest, db, "{name}");
    }
    assert_eq!(s.import_named(&dir, "v1").unwrap().digest, da);
    let mut sources: Vec<String> = s
        .list()
        .unwrap()
        .iter()
        .map(|i| i.source.display().to_string())
        .collect();
    sources.sort();
    assert_eq!(sources, [at("v1"), at("v2")]);
}

/// The CLI: `cuddy sandbox run --image PATH:NAME` runs the named image's
/// Cmd; `cuddy image import` of the unnamed layout fails naming it; a
/// legacy `docker save` of two images is chosen by `RepoTags`.
#[test]
fn sandbox_run_and_import_take_path_colon_name() {
    require_root!();
    let ctx = Ctx::new("imgname");
    let (d, s) = store();
    let cache = s.root().to_str().unwrap().to_string();
    let two = two_images();
    let dir = d.path().join("two");
    write_two_layout(&dir, &two);
    let legacy = d.path().join("legacy.tar");
    write_docker_legacy_multi(
        &legacy,
        &[
            (&two.tars[0], &two.configs[0], "app:one"),
            (&two.tars[1], &two.configs[1], "app:two"),
        ],
    );
    let run =
        |image: String| ctx.cuddy(&["sandbox", "run", "--image-cache", &cache, "--image", &image]);
    for (image, want) in [
        (format!("{}:v1", dir.display()), "a"),
        (format!("{}:app:v2", dir.display()), "b"),
        (format!("{}:app:one", legacy.display()), "a"),
        (format!("{}:app:two", legacy.display()), "b"),
    ] {
        let out = run(image.clone());
        assert_ok(&out, &image);
        assert_eq!(stdout(&out), want, "{image}");
    }
    let out = cuddy_image(s.root(), &["import", legacy.to_str().unwrap()]);
    assert_fails_with(
        &out,
        "legacy.tar: not an image: manifest.json lists 2 images; choose one as PATH:NAME (names: app:one, app:two)",
    );
    let out = run(format!("{}:app:three", legacy.display()));
    assert_fails_with(&out, "no image named \"app:three\" in manifest.json");
}
