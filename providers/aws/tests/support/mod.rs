//! A moto server for the tests: moto speaks AWS's wire protocol, so the
//! provider runs its real SDK calls against it. Each test binary starts its
//! own on a free loopback port and stops it by its pid when done, also when
//! a test fails.
//!
//! The server is `$MOTO_SERVER`, or `moto_server` on the PATH, or the one
//! `scripts/test` installs in `target/moto-venv`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use infra_provider_aws::{aws_config, aws_sdk_ec2};

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

fn server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/moto-venv/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

impl Moto {
    pub fn start() -> Moto {
        Moto::start_with(&[])
    }

    /// A server that checks credentials like AWS (moto's IAM
    /// authentication from the first request): unknown keys are refused.
    #[allow(dead_code)]
    pub fn start_checking_credentials() -> Moto {
        Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")])
    }

    fn start_with(environment: &[(&str, &str)]) -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let binary = server_binary();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Like AWS: an unknown AMI or key pair is an error.
            .env("MOTO_ENABLE_AMI_VALIDATION", "true")
            .env("MOTO_ENABLE_KEYPAIR_VALIDATION", "true")
            .envs(environment.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {} ({error}): run `scripts/test`, which installs moto, or set MOTO_SERVER",
                    binary.display()
                )
            });
        let moto = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// What the SDK needs to talk to this server: dummy credentials, a
    /// region, the endpoint (for tests that run the `infra` binary).
    #[allow(dead_code)]
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

impl Moto {
    /// An SDK configuration for this server, to look at and change things
    /// behind infra's back.
    #[allow(dead_code)]
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(self.endpoint.clone())
            .credentials_provider(aws_sdk_ec2::config::Credentials::new(
                "testing", "testing", None, None, "test",
            ))
            .load()
            .await
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
