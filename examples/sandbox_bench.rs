//! Start-to-exit of `/bin/true` in a fresh sandbox (issue 12), interleaved
//! (each round runs every row once, in a shuffled order)
//! with the same through `cuddy sandbox run` and `cuddy run` of a plain
//! bundle (and, with `--case`, any other command: `bench.sh --sandbox`
//! passes `podman run --rm` / `docker run --rm` of the same image through
//! `integration/bench/clients.sh --exec`); then N sandboxes at once from N
//! threads of this one process. Run by `integration/bench/bench.sh
//! --sandbox` (as root):
//!
//!     sandbox_bench CUDDY ROOTFS [-n N] [--at-once K] [--image PATH] [--case JSON]...
//!
//! `--case '{"name": "...", "argv": ["prog", "arg", ...]}'`: one more row,
//! timed as fork + exec + wait of argv ("{i}" in an argument replaced by the
//! run number), stdout to /dev/null, exit status 0 required.
//!
//! Prints a Markdown table: median and p90 in milliseconds, and the median
//! over `cuddy run`'s. With `--image`, also `Sandbox::image` and `cuddy
//! sandbox run --image` (the image imported once, untimed, in the warm-up,
//! into a fresh image cache: the rows are from a cached image). Then K
//! (default 50) `Sandbox::output()` at once, from the rootfs and the image.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cuddy::Sandbox;

type Run = Box<dyn Fn(usize) -> Result<(), String>>;

struct Paths {
    cuddy: PathBuf,
    rootfs: PathBuf,
    image: Option<PathBuf>,
    work: PathBuf,
}

fn status(what: &str, mut c: Command) -> Result<(), String> {
    match c.stdin(Stdio::null()).stdout(Stdio::null()).status() {
        Ok(s) if s.success() => Ok(()),
        other => Err(format!("{what}: {other:?}")),
    }
}

fn output(s: Sandbox) -> Result<(), String> {
    let o = s.output().map_err(|e| e.to_string())?;
    (o.status == 0)
        .then_some(())
        .ok_or(format!("status {}", o.status))
}

/// A `Sandbox` of /bin/true from the rootfs, or from the image when `image`.
fn sandbox(p: &Paths, image: bool) -> Sandbox {
    let s = match (&p.image, image) {
        (Some(img), true) => Sandbox::image(img).image_cache(p.work.join("images")),
        _ => Sandbox::rootfs(&p.rootfs),
    };
    s.binary(&p.cuddy)
        .state_root(p.work.join("root-lib"))
        .args(["/bin/true"])
}

/// `cuddy sandbox run --rootfs|--image ... -- /bin/true`.
fn cli(p: &Paths, image: bool) -> Command {
    let mut c = Command::new(&p.cuddy);
    c.arg("--root")
        .arg(p.work.join("root-cli"))
        .args(["sandbox", "run"]);
    match (&p.image, image) {
        (Some(img), true) => c
            .arg("--image")
            .arg(img)
            .arg("--image-cache")
            .arg(p.work.join("images")),
        _ => c.arg("--rootfs").arg(&p.rootfs),
    };
    c.args(["--", "/bin/true"]);
    c
}

fn bundle(p: &Paths) -> Result<PathBuf, String> {
    let bundle = p.work.join("bundle");
    std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
    let mut cfg = cuddy::spec::default_spec(false, 0, 0);
    cfg["root"]["path"] = serde_json::json!(p.rootfs);
    cfg["process"]["terminal"] = serde_json::json!(false);
    cfg["process"]["args"] = serde_json::json!(["/bin/true"]);
    std::fs::write(bundle.join("config.json"), cfg.to_string()).map_err(|e| e.to_string())?;
    Ok(bundle)
}

/// An external command from `--case JSON`.
fn external(json: &str) -> Result<(String, Run), String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("--case: {e}"))?;
    let name = v["name"].as_str().ok_or("--case: no \"name\"")?.to_string();
    let argv: Vec<String> = v["argv"]
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_str().map(String::from)).collect())
        .filter(|a: &Vec<String>| !a.is_empty())
        .ok_or(format!(
            "--case {name}: \"argv\" must be a non-empty string list"
        ))?;
    let what = name.clone();
    let run: Run = Box::new(move |i| {
        let mut c = Command::new(&argv[0]);
        c.args(argv[1..].iter().map(|a| a.replace("{i}", &i.to_string())));
        status(&what, c)
    });
    Ok((name, run))
}

/// The rows, in table order: the library, the CLI, `cuddy run`, the rest.
fn cases(p: &std::rc::Rc<Paths>, extra: &[String]) -> Result<Vec<(String, Run)>, String> {
    let mut v: Vec<(String, Run)> = Vec::new();
    let img = p.image.is_some();
    let q = p.clone();
    v.push((
        "`Sandbox::rootfs(..).output()`".into(),
        Box::new(move |_| output(sandbox(&q, false))),
    ));
    if img {
        let q = p.clone();
        v.push((
            "`Sandbox::image(..).output()` (cached image)".into(),
            Box::new(move |_| output(sandbox(&q, true))),
        ));
    }
    let q = p.clone();
    v.push((
        "`cuddy sandbox run --rootfs`".into(),
        Box::new(move |_| status("cuddy sandbox run --rootfs", cli(&q, false))),
    ));
    if img {
        let q = p.clone();
        v.push((
            "`cuddy sandbox run --image` (cached image)".into(),
            Box::new(move |_| status("cuddy sandbox run --image", cli(&q, true))),
        ));
    }
    let (q, b) = (p.clone(), bundle(p)?);
    v.push((
        "`cuddy run` (plain bundle, same rootfs)".into(),
        Box::new(move |i| {
            let mut c = Command::new(&q.cuddy);
            c.arg("--root").arg(q.work.join("root-run")).arg("run");
            c.arg("--bundle").arg(&b).arg(format!("bench-{i}"));
            status("cuddy run", c)
        }),
    ));
    for json in extra {
        v.push(external(json)?);
    }
    Ok(v)
}

/// Fisher-Yates with xorshift64: reproducible, no dependency.
fn shuffle(v: &mut [usize], seed: &mut u64) {
    for i in (1..v.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        v.swap(i, (*seed % (i as u64 + 1)) as usize);
    }
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
fn parallel(p: &Paths, image: bool, n: usize) -> Result<Duration, String> {
    let t = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let s = sandbox(p, image);
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

fn bench(p: std::rc::Rc<Paths>, n: usize, k: usize, extra: &[String]) -> Result<(), String> {
    let cases = cases(&p, extra)?;
    // Warm-up (untimed): page cache, image import, the clients' first run.
    for (name, f) in &cases {
        f(n).map_err(|e| format!("{name}: {e}"))?;
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut order: Vec<usize> = (0..cases.len()).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..n {
        // A fresh order each round, so that no row always follows the
        // same one (a client's daemon may still be cleaning up after its
        // `run --rm` has returned: the next row would always pay for it).
        shuffle(&mut order, &mut seed);
        for &k in &order {
            let (name, f) = &cases[k];
            let t = Instant::now();
            f(i).map_err(|e| format!("{name}: {e}"))?;
            times[k].push(t.elapsed());
        }
    }
    let stats: Vec<(f64, f64)> = times.into_iter().map(stats).collect();
    let base = cases
        .iter()
        .zip(&stats)
        .find(|((name, _), _)| name.starts_with("`cuddy run`"))
        .map_or(f64::NAN, |(_, s)| s.0);
    println!(
        "| start-to-exit of /bin/true ({n} runs, interleaved) | median ms | p90 ms | median / `cuddy run` |"
    );
    println!("|---|---:|---:|---:|");
    for ((name, _), (m, p)) in cases.iter().zip(stats) {
        println!("| {name} | {m:.1} | {p:.1} | {:.2} |", m / base);
    }
    let mut batches = vec![("rootfs", false)];
    if p.image.is_some() {
        batches.push(("cached image", true));
    }
    for (what, image) in batches {
        let t = parallel(&p, image, k)?;
        println!(
            "| {k} `Sandbox::output()` at once from {k} threads, {what} (wall time of the batch) | {:.0} | | |",
            ms(t)
        );
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut n, mut k, mut image) = (50usize, 50usize, None::<PathBuf>);
    let (mut pos, mut extra) = (Vec::new(), Vec::new());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-n" => n = it.next().and_then(|v| v.parse().ok()).ok_or("-n N")?,
            "--at-once" => {
                k = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--at-once K")?
            }
            "--image" => image = Some(it.next().ok_or("--image PATH")?.into()),
            "--case" => extra.push(it.next().ok_or("--case JSON")?),
            _ => pos.push(PathBuf::from(a)),
        }
    }
    let [cuddy, rootfs] = <[PathBuf; 2]>::try_from(pos)
        .map_err(|_| "usage: sandbox_bench CUDDY ROOTFS [-n N] [--at-once K] [--image PATH] [--case JSON]...")?;
    let abs = |p: PathBuf| std::path::absolute(p).map_err(|e| e.to_string());
    let work = std::env::temp_dir().join(format!("cuddy-sbx-bench-{}", std::process::id()));
    let paths = Paths {
        cuddy: abs(cuddy)?,
        rootfs: abs(rootfs)?,
        image: image.map(abs).transpose()?,
        work: work.clone(),
    };
    let r = bench(std::rc::Rc::new(paths), n.max(1), k.max(1), &extra);
    // Every Sandbox has been dropped (its mounts and state gone): only
    // plain files (the image cache, the bundle) are left here.
    let _ = std::fs::remove_dir_all(&work);
    r
}
