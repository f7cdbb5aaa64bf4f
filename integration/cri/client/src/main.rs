//! `cuddy-cri`: the CRI client of cuddy's Kubernetes suite. It speaks the
//! kubelet's API (CRI `runtime.v1`, the `k8s-cri` crate's tonic client) to a
//! containerd whose CRI plugin runs cuddy as the runc shim's `BinaryName`,
//! and asserts what each call really did (namespaces, cgroup files, seccomp,
//! the pod's IP, logs, the runtime's own state files), as the kubelet's
//! calls would.
//!
//! ```text
//! cuddy-cri scenario --socket S --image REF --pause-image REF [--handler H]
//!                    --cgroup-parent P --log-dir D --subnet 10.88.77.
//! cuddy-cri bench    --socket S --image REF --cgroup-parent P --log-dir D [--runs 5]
//! cuddy-cri version  --socket S
//! ```
//!
//! A test driver: a failed assertion panics with what was expected and
//! seen, and the exit status is non-zero. tonic and tokio stay in this
//! crate (its own workspace and target directory): cuddy itself forks from a
//! single-threaded process and links neither.

mod bench;
mod host;
mod scenario;

use std::collections::HashMap;
use std::time::Instant;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::{Channel, Endpoint, Uri};

/// A connection to the CRI socket and the current-thread runtime that
/// drives it (every call is blocking for the driver).
pub struct Cri {
    pub rt: tokio::runtime::Runtime,
    pub rs: RuntimeServiceClient<Channel>,
    pub is: ImageServiceClient<Channel>,
}

impl Cri {
    pub fn connect(socket: &str) -> Cri {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread tokio runtime");
        let path = socket.to_string();
        let channel = rt
            .block_on(
                Endpoint::from_static("http://[::]:0").connect_with_connector(tower::service_fn(
                    move |_: Uri| {
                        let path = path.clone();
                        async move {
                            let s = tokio::net::UnixStream::connect(path).await?;
                            Ok::<_, std::io::Error>(TokioIo::new(s))
                        }
                    },
                )),
            )
            .unwrap_or_else(|e| panic!("connect to the CRI socket {socket}: {e}"));
        Cri {
            rt,
            rs: RuntimeServiceClient::new(channel.clone()),
            is: ImageServiceClient::new(channel),
        }
    }
}

/// One CRI call, blocking: `call!(cri, method, request)` is the response
/// message (`call!(cri, is: method, request)` for the image service); a
/// gRPC error panics naming the method.
#[macro_export]
macro_rules! call {
    ($cri:expr, is: $m:ident, $req:expr) => {{
        let c: &mut $crate::Cri = &mut *$cri;
        let req = $req;
        c.rt.block_on(c.is.$m(req))
            .map(|r| r.into_inner())
            .unwrap_or_else(|s| panic!("CRI {} failed: {s:?}", stringify!($m)))
    }};
    ($cri:expr, $m:ident, $req:expr) => {{
        let c: &mut $crate::Cri = &mut *$cri;
        let req = $req;
        c.rt.block_on(c.rs.$m(req))
            .map(|r| r.into_inner())
            .unwrap_or_else(|s| panic!("CRI {} failed: {s:?}", stringify!($m)))
    }};
}

/// Runs `f` as a named step, printing its outcome and duration.
pub fn step<T>(name: &str, f: impl FnOnce() -> T) -> T {
    eprintln!("  step {name} ...");
    let t = Instant::now();
    let v = f();
    eprintln!("  step {name}: ok ({} ms)", t.elapsed().as_millis());
    v
}

/// `--key value` options after the subcommand.
pub struct Opts(HashMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Opts {
        let mut m = HashMap::new();
        let mut it = args.iter();
        while let Some(k) = it.next() {
            let Some(k) = k.strip_prefix("--") else {
                panic!("unexpected argument {k:?} (options are --key value)");
            };
            let v = it.next().unwrap_or_else(|| panic!("--{k} needs a value"));
            m.insert(k.to_string(), v.clone());
        }
        Opts(m)
    }

    pub fn get(&self, k: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("missing --{k}"))
    }

    pub fn get_or(&self, k: &str, default: &str) -> String {
        self.0
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprintln!("usage: cuddy-cri scenario|bench|version --socket PATH [--key value]...");
        std::process::exit(2);
    };
    let opts = Opts::parse(&args[1..]);
    let mut cri = Cri::connect(&opts.get("socket"));
    match cmd.as_str() {
        "version" => {
            let v = call!(
                &mut cri,
                version,
                k8s_cri::v1::VersionRequest {
                    version: "v1".into()
                }
            );
            println!("{v:?}");
        }
        "scenario" => scenario::run(&mut cri, &opts),
        "bench" => bench::run(&mut cri, &opts),
        other => {
            eprintln!("unknown subcommand {other:?}");
            std::process::exit(2);
        }
    }
}
