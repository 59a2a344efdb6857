//! `check` benchmark for PRODUCT.md section 8: checking 20 clusters takes at most about
//! twice the time of checking one, because clusters are read in parallel.
//!
//! Run with `cargo bench -p meshfleet --bench check`.
//!
//! What is real and what is not. Twenty real control planes would need ~9 GB and would
//! fight for the machine's 2 cores while starting; instead 4 real ones are started
//! (`testenv`), and the fleet's 20 clusters are 20 kubeconfig CONTEXTS spread over them:
//! the hub `c01` alone on the first API server, the 19 spokes round-robin on the other
//! three. Every context gets its own client, connections and full snapshot, and every
//! spoke's link credentials are tried against the hub, exactly as with 20 clusters. The
//! objects each cluster is checked against are the fixtures of the integration tests
//! (`tests/it/fixtures.rs`); spokes that share an API server expect identical objects
//! (each has one link, to `c01`), so every check passes, as on a healthy fleet.
//!
//! Two network settings are measured:
//!
//! - loopback, directly: the worst case for the claim. Each API server answers 6-7
//!   clusters' requests and all of them share 2 cores with the client, where 20 real
//!   clusters would each answer only their own on their own CPUs; the CPU columns show
//!   that this case is bound by CPU, not by waiting.
//! - a 20 ms round trip (10 ms each way), the order of clusters in one region reached
//!   over a VPN: each API server is reached through a relay on 127.0.0.1 that delays
//!   every chunk by 10 ms, keeping order. TLS still runs end to end with the real
//!   servers. Here a cluster's time is mostly round trips, as with real remote clusters.
//!
//! Compared in each: the whole fleet against one spoke (`--cluster c02`, which also reads
//! its link's target, the hub, as each spoke does in the full run) and against one
//! cluster alone (`--cluster c01`). The release binary is run; median of several runs
//! after a warm-up run, with the client's and the API servers' CPU time per run.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

// The file allows its own dead code: it is a library for tests.
#[path = "../tests/it/fixtures.rs"]
mod fixtures;
#[allow(dead_code)]
#[path = "../tests/it/support.rs"]
mod support;
#[allow(dead_code)]
#[path = "../tests/it/testenv.rs"]
mod testenv;

use kube::config::{Kubeconfig, NamedContext};

const SERVERS: [&str; 4] = ["s1", "s2", "s3", "s4"];
const CLUSTERS: usize = 20;
const RUNS: usize = 9;
const ONE_WAY_DELAY: Duration = Duration::from_millis(10);

const ONE: &str = "one cluster alone (--cluster c01)";
const SPOKE: &str = "one spoke and its hub (--cluster c02)";
const ALL: &str = "all 20 clusters";

fn main() {
    let env = testenv::private(&SERVERS);
    let work = tempfile::tempdir().expect("tempdir");
    let placement = placement();
    std::fs::write(work.path().join("fleet.yaml"), fleet(&env, &placement)).expect("write fleet");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_meshfleet"));
    let init = Command::new(&bin)
        .args(["certs", "init"])
        .arg(work.path())
        .output()
        .expect("certs init");
    assert!(init.status.success(), "certs init failed: {init:?}");

    let fixture = fixtures::FleetFixture::load(work.path());
    let started = Instant::now();
    testenv::block_on(async {
        let mut servers = BTreeMap::new();
        for server in SERVERS {
            servers.insert(server, env.client(server).await);
        }
        let clients = placement
            .iter()
            .map(|(cluster, server)| (cluster.clone(), servers[server.as_str()].clone()))
            .collect();
        fixture.install(&clients).await;
    });
    println!(
        "meshfleet check benchmark: {CLUSTERS} clusters (a hub and 19 spokes) as contexts on {} real API \
         servers, 2 cores; fixtures installed in {:.1}s; median of {RUNS} runs",
        SERVERS.len(),
        started.elapsed().as_secs_f64()
    );

    let direct = work.path().join("kubeconfig");
    write_kubeconfig(&env, &placement, &BTreeMap::new(), &direct);
    let relays: BTreeMap<String, String> = SERVERS
        .iter()
        .map(|s| {
            let upstream = env.server(s);
            let addr: SocketAddr = upstream
                .trim_start_matches("https://")
                .parse()
                .expect("servers are https://127.0.0.1:PORT");
            (
                (*s).to_string(),
                format!("https://{}", relay(addr, ONE_WAY_DELAY)),
            )
        })
        .collect();
    let delayed = work.path().join("kubeconfig-delayed");
    write_kubeconfig(&env, &placement, &relays, &delayed);

    let servers = server_pids(&env);
    for (network, kubeconfig) in [("loopback", &direct), ("20 ms round trip", &delayed)] {
        println!();
        println!(
            "{:<40} {:>8} {:>7} {:>9} {:>9} {:>11} {:>11}",
            network, "clusters", "checks", "median", "min", "client cpu", "server cpu"
        );
        let mut medians = BTreeMap::new();
        for (name, extra) in [
            (ONE, vec!["--cluster", "c01"]),
            (SPOKE, vec!["--cluster", "c02"]),
            (ALL, vec![]),
        ] {
            let report = check(&bin, work.path(), kubeconfig, &extra);
            let (client_before, server_before) = (children_cpu(), process_cpu(&servers));
            let mut times: Vec<Duration> = (0..RUNS)
                .map(|_| {
                    let t = Instant::now();
                    check(&bin, work.path(), kubeconfig, &extra);
                    t.elapsed()
                })
                .collect();
            let runs = u32::try_from(RUNS).unwrap_or(1);
            let client = children_cpu().saturating_sub(client_before) / runs;
            let server = process_cpu(&servers).saturating_sub(server_before) / runs;
            times.sort();
            let median = times[RUNS / 2];
            println!(
                "{name:<40} {:>8} {:>7} {:>7.0}ms {:>7.0}ms {:>9.0}ms {:>9.0}ms",
                report["summary"]["clusters"].as_u64().unwrap_or(0),
                report["summary"]["ok"].as_u64().unwrap_or(0),
                ms(median),
                ms(times[0]),
                ms(client),
                ms(server)
            );
            medians.insert(name, median);
        }
        for baseline in [ONE, SPOKE] {
            println!(
                "  ratio all 20 / {baseline}: {:.2}x",
                medians[ALL].as_secs_f64() / medians[baseline].as_secs_f64()
            );
        }
    }
}

/// `meshfleet check -o json`; the fixture is healthy, so anything but success is a bug.
fn check(bin: &Path, fleet: &Path, kubeconfig: &Path, extra: &[&str]) -> serde_json::Value {
    let output = Command::new(bin)
        .arg("check")
        .arg(fleet)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["-o", "json"])
        .args(extra)
        .output()
        .expect("run check");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON from check ({e}); stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        output.status.success(),
        "check failed on the healthy fixture: {}",
        report["summary"]
    );
    report
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// User and system CPU time of the finished children (the `meshfleet` runs).
fn children_cpu() -> Duration {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).expect("rusage");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

/// The pids of the environment's API servers and etcds (from its `pids` file).
fn server_pids(env: &testenv::TestEnv) -> Vec<u32> {
    std::fs::read_to_string(env.dir().join("pids"))
        .expect("pids file")
        .lines()
        .filter(|l| l.contains("kube-apiserver") || l.contains("etcd"))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// CPU time used so far by `pids` (utime + stime from /proc, in clock ticks of 10 ms).
fn process_cpu(pids: &[u32]) -> Duration {
    let ticks: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum();
    Duration::from_millis(ticks * 10)
}

/// A TCP relay on 127.0.0.1 to `upstream` that delays every chunk, each way, by
/// `one_way`, keeping order. It serves until the benchmark exits.
fn relay(upstream: SocketAddr, one_way: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
    let addr = listener.local_addr().expect("relay address");
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                forward(c, s, one_way);
                forward(server, client, one_way);
            }
        }
    });
    addr
}

/// Copy `from` to `to`, each chunk `delay` after it arrived.
fn forward(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || tx.send((Instant::now() + delay, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for (due, data) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to.write_all(&data).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Fleet cluster → API server: the hub alone on the first, spokes round-robin on the rest.
fn placement() -> BTreeMap<String, String> {
    (1..=CLUSTERS)
        .map(|i| {
            let server = if i == 1 {
                SERVERS[0]
            } else {
                SERVERS[1 + (i - 2) % (SERVERS.len() - 1)]
            };
            (format!("c{i:02}"), server.to_string())
        })
        .collect()
}

fn fleet(env: &testenv::TestEnv, placement: &BTreeMap<String, String>) -> String {
    let mut text = String::from(
        "apiVersion: meshfleet.io/v1alpha1
kind: Fleet
metadata: {name: bench}
spec:
  linkerd: {version: 2025.4.4}
  gitops:
    engine: flux
    repository: {url: https://github.com/example/fleet.git}
  identity: {trustAnchor: certs/trust-anchor.crt}
  secrets:
    vault: {server: https://vault.example:8200, mount: secret, path: linkerd}
  topology: {hubAndSpoke: {hub: c01}}
  clusters:
",
    );
    for (i, (cluster, server)) in placement.iter().enumerate() {
        let port = env
            .server(server)
            .rsplit(':')
            .next()
            .unwrap_or("6443")
            .to_string();
        text.push_str(&format!(
            "    - name: {cluster}
      vaultAuthMountPath: kubernetes-{cluster}
      apiServer: https://{cluster}.meshfleet.test:{port}
      network: {{pods: [10.{i}.0.0/16], services: [10.{}.0.0/16]}}
",
            100 + i
        ));
        if i == 0 {
            text.push_str("      gateway: {addresses: [192.0.2.1]}\n");
        }
    }
    text
}

/// The environment's kubeconfig with one context per fleet cluster, each pointing at the
/// cluster and user of its API server; `servers` replaces API server URLs (relays).
fn write_kubeconfig(
    env: &testenv::TestEnv,
    placement: &BTreeMap<String, String>,
    servers: &BTreeMap<String, String>,
    path: &Path,
) {
    let mut config = Kubeconfig::read_from(env.kubeconfig()).expect("read the environment's kubeconfig");
    for named in &mut config.clusters {
        if let (Some(url), Some(cluster)) = (servers.get(&named.name), named.cluster.as_mut()) {
            cluster.server = Some(url.clone());
        }
    }
    let contexts: Vec<NamedContext> = placement
        .iter()
        .map(|(cluster, server)| {
            let mut context = config
                .contexts
                .iter()
                .find(|c| &c.name == server)
                .expect("a context per server")
                .clone();
            context.name.clone_from(cluster);
            context
        })
        .collect();
    config.contexts = contexts;
    config.current_context = Some("c01".into());
    let text = serde_saphyr::to_string(&config).expect("kubeconfig YAML");
    std::fs::write(path, text).expect("write kubeconfig");
}
