//! config-linux.md "Block IO": checks on `linux.resources` that hold
//! whatever the host's cgroup version, made before anything is created
//! (the same bounds `update --blkio-weight` applies).

use oci_spec::runtime::LinuxResources;

/// blkio.weight / io.bfq.weight bounds (cgroup v1 blkio: 10..1000; 0 means
/// "not set", as runc reads it).
const WEIGHTS: std::ops::RangeInclusive<u16> = 10..=1000;

/// On error, the field and why.
pub fn check(res: &LinuxResources) -> Result<(), (String, String)> {
    let Some(b) = res.block_io() else {
        return Ok(());
    };
    let bad = |field: String, w: u16| {
        Err((
            field,
            format!("{w} is out of range (10..1000, or 0 for unset)"),
        ))
    };
    const F: &str = "linux.resources.blockIO";
    for (name, w) in [("weight", b.weight()), ("leafWeight", b.leaf_weight())] {
        if let Some(w) = w.filter(|w| *w != 0 && !WEIGHTS.contains(w)) {
            return bad(format!("{F}.{name}"), w);
        }
    }
    for (i, d) in b.weight_device().iter().flatten().enumerate() {
        for (name, w) in [("weight", d.weight()), ("leafWeight", d.leaf_weight())] {
            if let Some(w) = w.filter(|w| *w != 0 && !WEIGHTS.contains(w)) {
                return bad(format!("{F}.weightDevice[{i}].{name}"), w);
            }
        }
    }
    Ok(())
}
