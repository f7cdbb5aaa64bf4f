//! Many sandboxes at once from one test binary (issue 12 item 2): 50
//! `#[test]` functions (run as concurrently as the harness's threads allow)
//! and 50 std threads at once. Each writes its own file, sees no other's,
//! and the rootfs is unchanged afterwards.

use std::path::Path;

use crate::common::*;
use crate::require_root;

/// Sandbox `n` writes /mark-n, waits a little so the others overlap, and
/// lists the marks it sees: only its own.
fn isolated(n: usize) {
    let before = rootfs_hash();
    let mut r = sandbox()
        .args([
            "sh",
            "-c",
            &format!("echo {n} > /mark-{n}; sleep 0.3; ls / | grep '^mark-'"),
        ])
        .spawn()
        .unwrap();
    let (id, pid) = (r.id().to_string(), r.pid());
    let out = r.wait().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("mark-{n}\n"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        r.read_file(format!("/mark-{n}")).unwrap(),
        format!("{n}\n").as_bytes()
    );
    drop(r);
    assert_gone(Path::new(STATE), &id, pid);
    assert!(!rootfs().join(format!("mark-{n}")).exists());
    assert_eq!(
        hash_tree(rootfs()),
        before,
        "sandbox {n} changed the rootfs"
    );
}

macro_rules! fifty {
    ($($name:ident $n:literal)*) => {
        $(
            #[test]
            fn $name() {
                require_root!();
                isolated($n);
            }
        )*
    };
}

fifty! {
    t00 0 t01 1 t02 2 t03 3 t04 4 t05 5 t06 6 t07 7 t08 8 t09 9
    t10 10 t11 11 t12 12 t13 13 t14 14 t15 15 t16 16 t17 17 t18 18 t19 19
    t20 20 t21 21 t22 22 t23 23 t24 24 t25 25 t26 26 t27 27 t28 28 t29 29
    t30 30 t31 31 t32 32 t33 33 t34 34 t35 35 t36 36 t37 37 t38 38 t39 39
    t40 40 t41 41 t42 42 t43 43 t44 44 t45 45 t46 46 t47 47 t48 48 t49 49
}

/// 50 threads, each with a sandbox, all running at the same time.
#[test]
fn fifty_threads_at_once() {
    require_root!();
    let threads: Vec<_> = (100..150)
        .map(|n| std::thread::spawn(move || isolated(n)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
