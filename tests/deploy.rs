//! The deployment files: the compose files parse, use only images that are built here or pinned
//! official ones, set only variables that Tollgate reads (or the database image's own), mount
//! files that exist; the Dockerfile's build steps are the commands CI runs.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Variables `src/config.rs` reads (the same list `.env.example` documents).
fn tollgate_variables() -> BTreeSet<String> {
    let code = std::fs::read_to_string(Path::new(ROOT).join("src/config.rs")).unwrap();
    code.split('"')
        .skip(1)
        .step_by(2)
        .filter(|p| {
            p.len() > 2 && p.contains('_') && p.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        })
        .map(String::from)
        .chain(["TZ".to_string(), "RUST_LOG".to_string()])
        .collect()
}

fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(ROOT).join("docker").join(name)).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn compose_files_are_consistent() {
    let vars = tollgate_variables();
    let pinned = ["mysql:8.4", "redis:7.4-alpine", "nginx:1.27-alpine"];
    let own_env = |image: &str| -> &'static [&'static str] {
        match image {
            "mysql:8.4" => &[
                "TZ",
                "MYSQL_ROOT_PASSWORD",
                "MYSQL_USER",
                "MYSQL_PASSWORD",
                "MYSQL_DATABASE",
            ],
            _ => &[],
        }
    };
    let mut built = false;
    for file in [
        "compose.sqlite.yml",
        "compose.mysql-redis.yml",
        "compose.two-nodes.yml",
    ] {
        let doc = load(file);
        let services = doc["services"].as_object().expect("services");
        assert!(!services.is_empty(), "{file}");
        for (name, svc) in services {
            let image = svc["image"].as_str().unwrap_or_default();
            let is_tollgate = image == "tollgate:local";
            if let Some(build) = svc.get("build") {
                built = true;
                let ctx = Path::new(ROOT)
                    .join("docker")
                    .join(build["context"].as_str().unwrap());
                let dockerfile = ctx.join(build["dockerfile"].as_str().unwrap());
                assert!(
                    dockerfile.is_file(),
                    "{file}/{name}: {}",
                    dockerfile.display()
                );
                assert!(
                    is_tollgate,
                    "{file}/{name} builds but is not tagged tollgate:local"
                );
            } else if !is_tollgate {
                assert!(
                    pinned.contains(&image),
                    "{file}/{name}: unpinned image {image:?}"
                );
            }
            if let Some(env) = svc["environment"].as_object() {
                for key in env.keys() {
                    if key == "<<" {
                        continue;
                    }
                    if is_tollgate {
                        assert!(vars.contains(key), "{file}/{name}: Tollgate reads no {key}");
                    } else {
                        assert!(
                            own_env(image).contains(&key.as_str()),
                            "{file}/{name}: {key}"
                        );
                    }
                }
            }
            // Merged anchors (`<<: *tollgate-env`) hold Tollgate variables too.
            if let Some(merged) = svc["environment"]["<<"].as_object() {
                for key in merged.keys() {
                    assert!(vars.contains(key), "{file}/{name}: Tollgate reads no {key}");
                }
            }
            for v in svc["volumes"].as_array().into_iter().flatten() {
                let host = v.as_str().unwrap().split(':').next().unwrap();
                if host.ends_with(".conf") {
                    assert!(
                        Path::new(ROOT).join("docker").join(host).is_file(),
                        "{file}/{name}: {host}"
                    );
                }
            }
        }
    }
    assert!(built);
    // The two-node file sets what docs/multi-node.md says.
    let two = load("compose.two-nodes.yml");
    assert_eq!(
        two["services"]["master"]["environment"]["NODE_TYPE"],
        "master"
    );
    assert_eq!(
        two["services"]["slave"]["environment"]["NODE_TYPE"],
        "slave"
    );
    assert!(two["services"]["slave"]["environment"]["FRONTEND_BASE_URL"].is_string());
}

#[test]
fn dockerfile_builds_with_the_commands_ci_runs() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("docker/Dockerfile")).unwrap();
    let ci = std::fs::read_to_string(Path::new(ROOT).join("scripts/test")).unwrap();
    let runs: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RUN "))
        .collect();
    assert!(runs.iter().any(|r| r.contains("npm ci")) && ci.contains("npm ci"));
    assert!(runs.iter().any(|r| r.contains("npm run build")) && ci.contains("npm run build"));
    assert!(
        runs.iter()
            .any(|r| r.contains("cargo build --release --locked"))
    );
    assert!(dockerfile.contains("USER tollgate"), "must not run as root");
    assert!(dockerfile.contains("WORKDIR /data"));
    assert!(dockerfile.contains("EXPOSE 3000"));
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/api/status"));
    // Every path the Dockerfile copies exists.
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(Path::new(ROOT).join(src).exists(), "COPY {src}");
        }
    }
}
