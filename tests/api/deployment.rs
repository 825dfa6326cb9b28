//! The deployment files, checked without a Docker engine: compose's shape, the balancer's config, the Dockerfile.
use std::{path::Path, process::Command};

use serde_yaml_ng::Value;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn compose() -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(repo("docker-compose.yml")).unwrap())
        .expect("docker-compose.yml parses")
}

fn depends(service: &Value, on: &str) -> String {
    service["depends_on"][on]["condition"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn compose_brings_up_the_whole_topology() {
    let compose = compose();
    let services = &compose["services"];
    for name in ["postgres", "redis", "migrate", "app", "lb"] {
        assert!(services.get(name).is_some(), "service {name} missing");
    }
    for name in ["postgres", "redis", "app"] {
        assert!(
            services[name]["healthcheck"]["test"].is_sequence(),
            "{name} has no healthcheck"
        );
    }
    assert!(
        services["postgres"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v.as_str().unwrap().contains("/var/lib/postgresql/data"))
    );
    assert_eq!(services["migrate"]["command"][0], "migrate");
    assert_eq!(depends(&services["migrate"], "postgres"), "service_healthy");

    let app = &services["app"];
    assert_eq!(app["deploy"]["replicas"].as_u64(), Some(3));
    assert_eq!(depends(app, "migrate"), "service_completed_successfully");
    assert_eq!(depends(app, "postgres"), "service_healthy");
    assert_eq!(depends(app, "redis"), "service_healthy");
    assert!(
        app["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|c| c == "--no-migrate"),
        "replicas must not race to migrate"
    );
    assert!(
        app["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v.as_str().unwrap().starts_with("logs:"))
    );
    assert!(
        app["environment"]["BURSAR_LOG_DIR"]
            .as_str()
            .unwrap()
            .contains("{instance}"),
        "one log folder per replica"
    );
    assert!(
        app["environment"]["REDIS_URL"]
            .as_str()
            .unwrap()
            .starts_with("redis://redis")
    );

    let lb = &services["lb"];
    assert!(
        lb["ports"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == Some("8080:8080"))
    );
    assert_eq!(depends(lb, "app"), "service_healthy");
    for volume in ["pgdata", "logs"] {
        assert!(
            compose["volumes"].get(volume).is_some(),
            "volume {volume} missing"
        );
    }
}

#[test]
fn the_balancer_is_round_robin_without_stickiness_and_retries_safely() {
    let main = std::fs::read_to_string(repo("deploy/haproxy/haproxy.cfg")).unwrap();
    let backend = std::fs::read_to_string(repo("deploy/haproxy/backend-compose.cfg")).unwrap();
    assert!(backend.contains("balance roundrobin"));
    assert!(backend.contains("server-template app 3 app:8080"));
    assert!(
        backend.contains("option httpchk GET /health/ready") && backend.contains("observe layer7")
    );
    for line in main.lines().chain(backend.lines()) {
        let line = line.trim();
        assert!(
            !line.starts_with("cookie")
                && !line.starts_with("stick")
                && !line.starts_with("balance source"),
            "sticky: {line}"
        );
    }
    assert!(main.contains("retry-on conn-failure") && main.contains("option redispatch"));
    assert!(
        main.contains("disable-l7-retry if !METH_GET !METH_HEAD"),
        "only idempotent requests are retried after they were sent"
    );

    // The real parser agrees (and so the compose balancer starts).
    let output = Command::new("haproxy")
        .args(["-c", "-q", "-f"])
        .arg(repo("deploy/haproxy/haproxy.cfg"))
        .arg("-f")
        .arg(repo("deploy/haproxy/backend-compose.cfg"))
        .env("BURSAR_LB_BIND", "127.0.0.1:8080")
        .output()
        .expect("haproxy must be installed (Debian package haproxy)");
    assert!(
        output.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn dockerfile_builds_in_stages_runs_unprivileged_and_copies_only_what_exists() {
    let dockerfile = std::fs::read_to_string(repo("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(
        instructions
            .iter()
            .filter(|l| l.starts_with("FROM "))
            .count()
            >= 3,
        "multi-stage"
    );
    assert!(dockerfile.contains("cargo chef cook"), "dependency caching");
    assert!(
        instructions.iter().any(|l| l.starts_with("HEALTHCHECK"))
            && dockerfile.contains("/health/live")
    );
    assert!(instructions.contains(&"STOPSIGNAL SIGTERM"));
    let user = instructions
        .iter()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER");
    assert!(!user.ends_with("root") && !user.ends_with(" 0"), "{user}");
    assert!(
        instructions.last().unwrap().starts_with("CMD")
            || instructions.last().unwrap().starts_with("ENTRYPOINT")
    );
    for copy in instructions
        .iter()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from="))
    {
        let parts: Vec<&str> = copy.split_whitespace().skip(1).collect();
        for source in &parts[..parts.len() - 1] {
            assert!(repo(source).exists(), "{copy}: {source} does not exist");
        }
    }
    let ignore = std::fs::read_to_string(repo(".dockerignore")).unwrap();
    assert!(
        ignore.lines().any(|l| l.trim() == "target"),
        "the build context leaves target/ out"
    );
}
