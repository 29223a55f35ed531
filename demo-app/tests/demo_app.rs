//! demo-app's settings, which the rollout tests rely on: an exact failure
//! rate, added latency, a slow start, and health that can be switched.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use infra_provider_local::runtime::http;

/// A demo-app process, killed when dropped (also when a test fails).
struct App {
    child: Child,
    addr: String,
    log: tempfile::NamedTempFile,
}

impl App {
    /// What it wrote on stderr so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts demo-app with `--port 0`, as the tests of infra do, and waits for
/// the line naming the port the system gave it.
fn demo_app(name: &str, env: &[(&str, &str)]) -> App {
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let child = Command::new(env!("CARGO_BIN_EXE_demo-app"))
        .args(["--port", "0"])
        .env("INFRA_INSTANCE", name)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().expect("the log file"))
        .spawn()
        .expect("start demo-app");
    let mut app = App {
        child,
        addr: String::new(),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = app.log();
        if let Some((_, addr)) = text
            .lines()
            .find_map(|line| line.split_once(" listening on "))
        {
            app.addr = addr.trim().to_string();
            return app;
        }
        if let Ok(Some(status)) = app.child.try_wait() {
            panic!("demo-app {name} exited early: {status}\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "demo-app {name} never listened\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn fail_rate_is_exact_and_metrics_count_every_answer() {
    let app = demo_app("bad", &[("APP_VERSION", "v9"), ("FAIL_RATE", "0.1")]);
    let mut failed = 0;
    for n in 0..1000 {
        let answer = http::get(&app.addr, "/", Duration::from_secs(5))
            .await
            .unwrap_or_else(|error| panic!("request {n}: {error}\n{}", app.log()));
        match answer.status {
            200 => assert_eq!(answer.text(), "demo-app v9 (bad)\n"),
            500 => failed += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(failed, 100, "FAIL_RATE=0.1 fails every tenth request");
    let metrics = http::get(&app.addr, "/metrics", Duration::from_secs(5))
        .await
        .unwrap()
        .text();
    for (code, count) in [(200, 900), (500, 100)] {
        for sample in [
            format!("demo_app_requests_total{{code=\"{code}\",version=\"v9\"}} {count}\n"),
            format!(
                "demo_app_request_duration_seconds_count{{code=\"{code}\",version=\"v9\"}} {count}\n"
            ),
            format!(
                "demo_app_request_duration_seconds_bucket{{code=\"{code}\",version=\"v9\",le=\"+Inf\"}} {count}\n"
            ),
        ] {
            assert!(metrics.contains(&sample), "{sample}{metrics}");
        }
    }
    let health = http::get(&app.addr, "/healthz", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn latency_and_slow_requests_wait_and_never_healthy_stays_unhealthy() {
    let app = demo_app("slow", &[("LATENCY_MS", "150"), ("NEVER_HEALTHY", "1")]);
    let started = Instant::now();
    let answer = http::get(&app.addr, "/?sleep_ms=100", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    let health = http::get(&app.addr, "/healthz", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(health.status, 503);
}

#[test]
fn a_slow_start_listens_only_after_its_delay() {
    let started = Instant::now();
    let app = demo_app("late", &[("STARTUP_DELAY_MS", "700")]);
    // `demo_app` returns once the port accepts connections.
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    drop(app);
}
