//! Render benchmark for PRODUCT.md section 8: a 1,000-cluster hub-and-spoke fleet and a
//! 50-cluster full mesh (2,450 links), rendered by the release `meshfleet` binary,
//! next to `cp -r` of the tree it writes, with the binary's peak memory.
//!
//! Run with `cargo bench -p meshfleet --bench render`. Targets: render under 1.5x the
//! `cp -r` time, under 150 MB peak; `validate` near-linear in the number of links.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // Child mode: run one command and report its peak RSS (the only child of this process).
    if args.get(1).map(String::as_str) == Some("--peak-rss") {
        let status = Command::new(&args[2])
            .args(&args[3..])
            .status()
            .expect("run child");
        assert!(status.success(), "child failed");
        let usage =
            nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).expect("rusage");
        println!("{}", usage.max_rss());
        return;
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_meshfleet"));
    let work = tempfile::tempdir().expect("tempdir");
    println!("meshfleet render benchmark ({RUNS} runs each, median)");
    println!(
        "{:<34} {:>7} {:>7} {:>10} {:>10} {:>7} {:>9} {:>10}",
        "fleet", "links", "files", "render", "cp -r", "ratio", "peak MB", "validate"
    );
    for (name, text, links) in [
        hub_and_spoke(1000),
        full_mesh(50),
        hub_and_spoke(250),
        full_mesh(25),
    ] {
        let dir = work.path().join(&name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("fleet.yaml"), &text).expect("write fleet");
        let anchor =
            meshfleet_core::identity::generate_anchor(time::OffsetDateTime::now_utc()).expect("anchor");
        std::fs::write(dir.join("anchor.crt"), anchor.cert_pem).expect("write anchor");
        let out = dir.join("out");
        let render = median(|| {
            run(
                &bin,
                &[
                    "render",
                    dir.to_str().expect("utf8"),
                    "--any-dir",
                    "--out",
                    out.to_str().expect("utf8"),
                ],
            )
        });
        let files = count_files(&out);
        let copy = median(|| {
            let target = dir.join("copy");
            let _ = std::fs::remove_dir_all(&target);
            run(
                Path::new("cp"),
                &["-r", out.to_str().expect("utf8"), target.to_str().expect("utf8")],
            )
        });
        let validate = median(|| run(&bin, &["validate", dir.to_str().expect("utf8")]));
        let peak_kb = peak_rss(&bin, &dir, &out);
        println!(
            "{name:<34} {links:>7} {files:>7} {:>8.0}ms {:>8.0}ms {:>6.2}x {:>9.1} {:>8.0}ms",
            ms(render),
            ms(copy),
            render.as_secs_f64() / copy.as_secs_f64(),
            f64::from(u32::try_from(peak_kb).unwrap_or(u32::MAX)) / 1024.0,
            ms(validate)
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn run(program: &Path, args: &[&str]) -> Duration {
    let start = Instant::now();
    let out = Command::new(program).args(args).output().expect("spawn");
    let elapsed = start.elapsed();
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        program.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

fn median(mut f: impl FnMut() -> Duration) -> Duration {
    let mut times: Vec<Duration> = (0..RUNS).map(|_| f()).collect();
    times.sort();
    times[RUNS / 2]
}

fn peak_rss(bin: &Path, dir: &Path, out: &Path) -> i64 {
    let me = std::env::current_exe().expect("bench exe");
    let output = Command::new(me)
        .arg("--peak-rss")
        .arg(bin)
        .args([
            "render",
            dir.to_str().expect("utf8"),
            "--any-dir",
            "--out",
            out.to_str().expect("utf8"),
        ])
        .output()
        .expect("peak");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("rss")
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).expect("read") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                n += 1;
            }
        }
    }
    n
}

fn header(name: &str) -> String {
    format!(
        "apiVersion: meshfleet.io/v1alpha1\nkind: Fleet\nmetadata: {{name: {name}}}\nspec:\n  linkerd: {{version: 2025.10.7, gatewayAPI: v1.2.1}}\n  gitops: {{engine: flux, repository: {{url: https://git.example/fleet.git}}}}\n  identity: {{trustAnchor: anchor.crt}}\n  secrets: {{vault: {{server: https://vault.example:8200, mount: secret, path: mesh}}}}\n  clusters:\n"
    )
}

fn cluster(text: &mut String, i: usize, gateway: bool) {
    let _ = write!(
        text,
        "    - name: c{i}\n      vaultAuthMountPath: kubernetes-c{i}\n      apiServer: https://c{i}.example:6443\n      network: {{pods: [10.{}.{}.0/24], services: [172.{}.{}.0/24]}}\n",
        i / 256,
        i % 256,
        16 + i / 256,
        i % 256
    );
    if gateway {
        let _ = writeln!(
            text,
            "      gateway: {{serviceType: NodePort, addresses: [c{i}.example], nodePort: 30143, probe: {{nodePort: 30191}}}}"
        );
    }
}

fn hub_and_spoke(n: usize) -> (String, String, usize) {
    let mut text = header("hub");
    for i in 0..n {
        cluster(&mut text, i, i == 0);
    }
    text.push_str("  topology: {hubAndSpoke: {hub: c0}}\n");
    (format!("hub-and-spoke, {n} clusters"), text, n - 1)
}

fn full_mesh(n: usize) -> (String, String, usize) {
    let mut text = header("mesh");
    for i in 0..n {
        cluster(&mut text, i, true);
    }
    text.push_str("  topology: {fullMesh: true}\n");
    (format!("full mesh, {n} clusters"), text, n * (n - 1))
}
