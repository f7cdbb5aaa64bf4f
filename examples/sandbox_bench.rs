//! Start-to-exit of `/bin/true` in a fresh sandbox (issue 12), interleaved
//! with the same through `cuddy sandbox run` and `cuddy run` of a plain
//! bundle; then N sandboxes at once from N threads of this one process.
//! Run by `integration/bench/bench.sh --sandbox` (as root):
//!
//!     sandbox_bench CUDDY ROOTFS [-n N] [--image PATH]
//!
//! Prints a Markdown table: median and p90 in milliseconds. With
//! `--image`, also `Sandbox::image` and `cuddy sandbox run --image` (the
//! image imported once, untimed, before).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cuddy::Sandbox;

type Case = (String, Box<dyn Fn(usize) -> Result<(), String>>);

fn check(what: &str, st: std::io::Result<std::process::ExitStatus>) -> Result<(), String> {
    match st {
        Ok(s) if s.success() => Ok(()),
        other => Err(format!("{what}: {other:?}")),
    }
}

fn quiet(mut c: Command) -> Command {
    c.stdin(Stdio::null()).stdout(Stdio::null());
    c
}

fn cases(
    cuddy: &Path,
    rootfs: &Path,
    image: Option<&Path>,
    work: &Path,
) -> Result<Vec<Case>, String> {
    let bundle = work.join("bundle");
    std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
    let mut cfg = cuddy::spec::default_spec(false, 0, 0);
    cfg["root"]["path"] = serde_json::json!(rootfs);
    cfg["process"]["terminal"] = serde_json::json!(false);
    cfg["process"]["args"] = serde_json::json!(["/bin/true"]);
    std::fs::write(bundle.join("config.json"), cfg.to_string()).map_err(|e| e.to_string())?;
    let (c1, c2, c3) = (
        cuddy.to_path_buf(),
        cuddy.to_path_buf(),
        cuddy.to_path_buf(),
    );
    let (r2, r3) = (rootfs.to_path_buf(), rootfs.to_path_buf());
    let (w1, w2, w3) = (work.to_path_buf(), work.to_path_buf(), work.to_path_buf());
    let mut v: Vec<Case> = vec![
        (
            "`cuddy run` (plain bundle)".into(),
            Box::new(move |i| {
                let mut c = Command::new(&c1);
                c.arg("--root")
                    .arg(w1.join("root-run"))
                    .arg("run")
                    .arg("--bundle")
                    .arg(&bundle);
                c.arg(format!("bench-{i}"));
                check("cuddy run", quiet(c).status())
            }),
        ),
        (
            "`cuddy sandbox run --rootfs`".into(),
            Box::new(move |_| {
                let mut c = Command::new(&c2);
                c.arg("--root")
                    .arg(w2.join("root-cli"))
                    .args(["sandbox", "run", "--rootfs"]);
                c.arg(&r2).args(["--", "/bin/true"]);
                check("cuddy sandbox run", quiet(c).status())
            }),
        ),
        (
            "`Sandbox::rootfs(..).output()`".into(),
            Box::new(move |_| {
                let o = Sandbox::rootfs(&r3)
                    .binary(&c3)
                    .state_root(w3.join("root-lib"))
                    .args(["/bin/true"])
                    .output()
                    .map_err(|e| e.to_string())?;
                (o.status == 0)
                    .then_some(())
                    .ok_or(format!("status {}", o.status))
            }),
        ),
    ];
    if let Some(img) = image {
        let (c4, c5, i4, i5, w4, w5) = (
            cuddy.to_path_buf(),
            cuddy.to_path_buf(),
            img.to_path_buf(),
            img.to_path_buf(),
            work.to_path_buf(),
            work.to_path_buf(),
        );
        v.push((
            "`Sandbox::image(..).output()` (cached)".into(),
            Box::new(move |_| {
                let o = Sandbox::image(&i4)
                    .binary(&c4)
                    .state_root(w4.join("root-lib"))
                    .image_cache(w4.join("images"))
                    .args(["/bin/true"])
                    .output()
                    .map_err(|e| e.to_string())?;
                (o.status == 0)
                    .then_some(())
                    .ok_or(format!("status {}", o.status))
            }),
        ));
        v.push((
            "`cuddy sandbox run --image` (cached)".into(),
            Box::new(move |_| {
                let mut c = Command::new(&c5);
                c.arg("--root")
                    .arg(w5.join("root-cli"))
                    .args(["sandbox", "run", "--image"]);
                c.arg(&i5)
                    .arg("--image-cache")
                    .arg(w5.join("images"))
                    .args(["--", "/bin/true"]);
                check("cuddy sandbox run --image", quiet(c).status())
            }),
        ));
    }
    Ok(v)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let p = |q: f64| ms(v[((v.len() as f64 - 1.0) * q).round() as usize]);
    (p(0.5), p(0.9))
}

/// `n` sandboxes at once, one per thread: wall time of the whole batch.
fn parallel(cuddy: &Path, rootfs: &Path, work: &Path, n: usize) -> Result<Duration, String> {
    let t = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let s = Sandbox::rootfs(rootfs)
                .binary(cuddy)
                .state_root(work.join("root-lib"))
                .args(["/bin/true"]);
            std::thread::spawn(move || s.output().map(|o| o.status))
        })
        .collect();
    for th in threads {
        match th.join() {
            Ok(Ok(0)) => {}
            other => return Err(format!("parallel sandbox: {other:?}")),
        }
    }
    Ok(t.elapsed())
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut n, mut image, mut pos) = (50usize, None::<PathBuf>, Vec::new());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" => n = it.next().and_then(|v| v.parse().ok()).ok_or("-n N")?,
            "--image" => image = Some(it.next().ok_or("--image PATH")?.into()),
            _ => pos.push(PathBuf::from(a)),
        }
    }
    let [cuddy, rootfs] = <[PathBuf; 2]>::try_from(pos)
        .map_err(|_| "usage: sandbox_bench CUDDY ROOTFS [-n N] [--image PATH]")?;
    let cuddy = std::path::absolute(cuddy).map_err(|e| e.to_string())?;
    let rootfs = std::path::absolute(rootfs).map_err(|e| e.to_string())?;
    let work = std::env::temp_dir().join(format!("cuddy-sbx-bench-{}", std::process::id()));
    let cases = cases(&cuddy, &rootfs, image.as_deref(), &work)?;
    // Warm-up (untimed): page cache, image import.
    for (name, f) in &cases {
        f(n).map_err(|e| format!("{name}: {e}"))?;
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for i in 0..n {
        for (k, (name, f)) in cases.iter().enumerate() {
            let t = Instant::now();
            f(i).map_err(|e| format!("{name}: {e}"))?;
            times[k].push(t.elapsed());
        }
    }
    let par = parallel(&cuddy, &rootfs, &work, n)?;
    println!("| start-to-exit of /bin/true ({n} runs, interleaved) | median ms | p90 ms |");
    println!("|---|---|---|");
    for ((name, _), t) in cases.iter().zip(times) {
        let (m, p) = stats(t);
        println!("| {name} | {m:.1} | {p:.1} |");
    }
    println!(
        "| {n} `Sandbox::output()` at once from {n} threads (wall time of the batch) | {:.0} | |",
        ms(par)
    );
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
