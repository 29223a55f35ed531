//! The example CI pipelines in `examples/ci/`, run as a runner would run
//! them, against `examples/quickstart` in a git repository with a remote:
//! the pull request job produces a Markdown plan, the main job applies a
//! saved plan and pushes the state, the scheduled drift job exits 2 with a
//! report naming the attribute changed by hand, and 0 after the repair.
//!
//! The steps are read from the YAML files, so a changed step is the step
//! that runs. What runs: GitHub's `run:` steps (bash -eo pipefail, as the
//! runner's default shell, with the workflow's and the job's `env`) and
//! GitLab's `script:` lines (one shell, `set -eo pipefail`). What does not:
//! `uses:` actions and GitLab's `before_script` — checkout, artifacts,
//! comments and issues are the platform's side (here the jobs share the
//! checkout and the runner's temporary directory, as checkout and
//! artifacts make them share the files), and installing infra (the binary
//! under test is on PATH). A `run:` step with an `if:` is refused: this
//! runner does not evaluate conditions. The AWS flavour (the same GitHub
//! pipelines against a network on moto) is in `aws.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use yaml_rust2::{Yaml, YamlLoader};

use crate::support::INFRA;

/// A repository with a configuration under `infra/`, its bare `origin`,
/// and a runner's temporary directory.
pub struct Repository {
    _root: tempfile::TempDir,
    origin: PathBuf,
    pub work: PathBuf,
    pub temp: PathBuf,
    /// What every job's environment adds (e.g. moto's endpoint and keys).
    environment: Vec<(String, String)>,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "dev")
        .env("GIT_AUTHOR_EMAIL", "dev@example.invalid")
        .env("GIT_COMMITTER_NAME", "dev")
        .env("GIT_COMMITTER_EMAIL", "dev@example.invalid")
        .output()
        .expect("git");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Repository {
    /// The quickstart.
    fn new() -> Repository {
        let quickstart = std::fs::read_to_string("examples/quickstart/main.infra").unwrap();
        Repository::with(&quickstart, Vec::new())
    }

    pub fn with(config: &str, environment: Vec<(String, String)>) -> Repository {
        let root = tempfile::tempdir().unwrap();
        let origin = root.path().join("origin.git");
        let work = root.path().join("work");
        let temp = root.path().join("runner-temp");
        std::fs::create_dir_all(&temp).unwrap();
        git(
            root.path(),
            &["init", "-q", "--bare", "-b", "main", "origin.git"],
        );
        git(root.path(), &["clone", "-q", "origin.git", "work"]);
        std::fs::create_dir(work.join("infra")).unwrap();
        std::fs::write(work.join("infra/main.infra"), config).unwrap();
        std::fs::write(work.join(".gitignore"), "infra/out/\n").unwrap();
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "the quickstart"]);
        git(&work, &["push", "-q", "origin", "HEAD:main"]);
        Repository {
            _root: root,
            origin,
            work,
            temp,
            environment,
        }
    }

    /// The environment every job gets: infra under test first on PATH, CI.
    fn command(&self, script: &str) -> Command {
        let bin = Path::new(INFRA).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        command
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(&self.work)
            .env("PATH", path)
            .env("CI", "true")
            .env_remove("INFRA_STATE_KEY")
            .env_remove("INFRA_LOG")
            .env("GIT_COMMITTER_NAME", "runner")
            .env("GIT_COMMITTER_EMAIL", "runner@example.invalid")
            .envs(self.environment.iter().map(|(k, v)| (k, v)));
        command
    }

    fn commit_all(&self, message: &str) {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        git(&self.work, &["push", "-q", "origin", "HEAD:main"]);
    }

    /// The state as `origin`'s main branch has it.
    pub fn pushed_state(&self) -> serde_json::Value {
        let text = git(&self.origin, &["show", "main:infra/infra.state.json"]);
        serde_json::from_str(&text).expect("a state")
    }
}

/// What one step did.
#[derive(Debug)]
pub struct Step {
    #[allow(dead_code, reason = "shown by Debug when a test fails")]
    name: String,
    pub code: i32,
    pub output: String,
}

pub fn load(path: &str) -> Yaml {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .remove(0)
}

/// `${{ … }}` in an `env` value: the secrets are unset here (the quickstart
/// keeps no secret sealed), `runner.temp` is the runner's directory.
fn github_expression(value: &str, repository: &Repository) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("a closed expression") + start;
        let expression = rest[start + 3..end].trim();
        match expression {
            e if e.starts_with("secrets.") => {}
            "runner.temp" => out.push_str(&repository.temp.display().to_string()),
            other => panic!("this runner does not evaluate `{other}`: teach it, or avoid it"),
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Runs GitHub job `job` of `workflow` in `repository`; stops at the first
/// step that fails, as a job does.
pub fn run_github_job(workflow: &Yaml, job: &str, repository: &Repository) -> Vec<Step> {
    let mut env: Vec<(String, String)> = Vec::new();
    for scope in [&workflow["env"], &workflow["jobs"][job]["env"]] {
        if let Some(map) = scope.as_hash() {
            for (name, value) in map {
                let value = value
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{value:?}"));
                env.push((
                    name.as_str().unwrap().to_string(),
                    github_expression(&value, repository),
                ));
            }
        }
    }
    let output_file = repository.temp.join("github-output");
    let summary_file = repository.temp.join("step-summary.md");
    let sha = git(&repository.work, &["rev-parse", "HEAD"]);
    let steps = workflow["jobs"][job]["steps"]
        .as_vec()
        .unwrap_or_else(|| panic!("job `{job}` has steps"));
    let mut ran = Vec::new();
    for step in steps {
        let Some(script) = step["run"].as_str() else {
            continue;
        };
        if step["id"].as_str() == Some("install-infra") {
            continue;
        }
        let name = step["name"].as_str().unwrap_or(script).to_string();
        assert!(step["if"].is_badvalue(), "step `{name}` has an `if:`");
        let mut command = repository.command(script);
        command
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_WORKSPACE", &repository.work)
            .env("GITHUB_SHA", sha.trim())
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_STEP_SUMMARY", &summary_file)
            .env("RUNNER_TEMP", &repository.temp);
        let output = command.output().expect("bash");
        let code = output.status.code().unwrap_or(-1);
        ran.push(Step {
            name,
            code,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
        if code != 0 {
            break;
        }
    }
    assert!(!ran.is_empty(), "job `{job}` ran no step");
    ran
}

/// Runs GitLab job `job`'s `script:` in `repository`: its exit code and
/// output.
fn run_gitlab_job(pipeline: &Yaml, job: &str, repository: &Repository) -> Step {
    let lines: Vec<&str> = pipeline[job]["script"]
        .as_vec()
        .unwrap_or_else(|| panic!("job `{job}` has a script"))
        .iter()
        .map(|line| line.as_str().expect("a script line is a string"))
        .collect();
    let mut command = repository.command(&lines.join("\n"));
    if let Some(variables) = pipeline["variables"].as_hash() {
        for (name, value) in variables {
            command.env(name.as_str().unwrap(), value.as_str().unwrap());
        }
    }
    let sha = git(&repository.work, &["rev-parse", "--short", "HEAD"]);
    let output = command
        .env("GITLAB_CI", "true")
        .env("CI_PROJECT_DIR", &repository.work)
        .env("CI_COMMIT_SHORT_SHA", sha.trim())
        .env("CI_DEFAULT_BRANCH", "main")
        .env("INFRA_PUSH_URL", &repository.origin)
        .output()
        .expect("bash");
    Step {
        name: job.to_string(),
        code: output.status.code().unwrap_or(-1),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

pub fn all_passed(steps: &[Step]) -> bool {
    steps.iter().all(|step| step.code == 0)
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The out-of-band change the drift jobs must find: the generated server
/// configuration edited by hand.
fn edit_by_hand(repository: &Repository) {
    std::fs::write(
        repository.work.join("infra/out/server.conf"),
        "edited on the server\n",
    )
    .unwrap();
}

const DRIFTED_ROW: &str = "| `local_file.config` | changed | `content`, `id` |";

#[test]
fn the_github_pipelines_plan_apply_and_catch_drift() {
    let repository = Repository::new();
    let plan = load("examples/ci/github/infra-plan.yml");
    let apply = load("examples/ci/github/infra-apply.yml");
    let drift = load("examples/ci/github/infra-drift.yml");

    // A pull request: a Markdown plan to post.
    let steps = run_github_job(&plan, "plan", &repository);
    assert!(all_passed(&steps), "{steps:#?}");
    let markdown = read(&repository.temp.join("plan.md"));
    assert!(
        markdown.starts_with("### infra plan: 6 to add, 0 to change, 0 to replace, 0 to destroy"),
        "{markdown}"
    );

    // Merged: plan, apply exactly that plan, push the state.
    for job in ["plan", "apply"] {
        let steps = run_github_job(&apply, job, &repository);
        assert!(all_passed(&steps), "{job}: {steps:#?}");
    }
    let state = repository.pushed_state();
    assert_eq!(state["resources"].as_object().unwrap().len(), 6, "{state}");

    // The scheduled check: clean, then drift, then clean after the repair.
    let clean = run_github_job(&drift, "drift", &repository);
    assert!(all_passed(&clean), "{clean:#?}");
    assert!(read(&repository.temp.join("drift.md")).starts_with("### infra drift: no drift"));
    edit_by_hand(&repository);
    let drifted = run_github_job(&drift, "drift", &repository);
    assert_eq!(drifted.last().unwrap().code, 2, "{drifted:#?}");
    let report = read(&repository.temp.join("drift.md"));
    assert!(report.contains(DRIFTED_ROW), "{report}");
    assert!(read(&repository.temp.join("github-output")).contains("exitcode=2"));
    for job in ["plan", "apply"] {
        assert!(all_passed(&run_github_job(&apply, job, &repository)));
    }
    let repaired = run_github_job(&drift, "drift", &repository);
    assert!(all_passed(&repaired), "{repaired:#?}");

    // A saved plan whose state moved on before its apply job: refused, and
    // nothing changes.
    let main = repository.work.join("infra/main.infra");
    std::fs::write(
        &main,
        read(&main).replace("default = 8080", "default = 8081"),
    )
    .unwrap();
    repository.commit_all("port 8081");
    assert!(all_passed(&run_github_job(&apply, "plan", &repository)));
    edit_by_hand(&repository);
    let meanwhile = repository
        .command("infra -chdir=infra apply -auto-approve -input=false")
        .output()
        .unwrap();
    assert!(meanwhile.status.success());
    let stale = run_github_job(&apply, "apply", &repository);
    let failed = stale.last().unwrap();
    assert_eq!(failed.code, 1, "{stale:#?}");
    assert!(
        failed.output.contains("cannot be applied"),
        "{}",
        failed.output
    );
}

#[test]
fn the_gitlab_pipeline_plans_applies_and_catches_drift() {
    let repository = Repository::new();
    let pipeline = load("examples/ci/gitlab/.gitlab-ci.yml");

    let plan = run_gitlab_job(&pipeline, "plan", &repository);
    assert_eq!(plan.code, 0, "{}", plan.output);
    let markdown = read(&repository.work.join("plan.md"));
    assert!(
        markdown.starts_with("### infra plan: 6 to add"),
        "{markdown}"
    );

    let apply = run_gitlab_job(&pipeline, "apply", &repository);
    assert_eq!(apply.code, 0, "{}", apply.output);
    assert_eq!(
        repository.pushed_state()["resources"]
            .as_object()
            .unwrap()
            .len(),
        6
    );

    let clean = run_gitlab_job(&pipeline, "drift", &repository);
    assert_eq!(clean.code, 0, "{}", clean.output);
    edit_by_hand(&repository);
    let drifted = run_gitlab_job(&pipeline, "drift", &repository);
    assert_eq!(drifted.code, 2, "{}", drifted.output);
    assert!(drifted.output.contains(DRIFTED_ROW), "{}", drifted.output);
    let repair = run_gitlab_job(&pipeline, "apply", &repository);
    assert_eq!(repair.code, 0, "{}", repair.output);
    let repaired = run_gitlab_job(&pipeline, "drift", &repository);
    assert_eq!(repaired.code, 0, "{}", repaired.output);
}
