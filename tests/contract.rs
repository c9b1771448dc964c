//! The route table, the OpenAPI document and the SAM template agree: every
//! route documented and deployed, every documented route served.

use std::collections::BTreeSet;
use std::path::Path;

use shared::entry::http::{Auth, Function, ROUTES};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn openapi_documents_exactly_the_served_routes() {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("docs/openapi.json")).unwrap()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "delete", "put"] {
            if let Some(op) = item.get(method) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} has no responses");
                // The operation's own security, else the document's (bearer).
                let scheme = match op.get("security").and_then(|s| s.as_array()) {
                    Some(a) if a.is_empty() => None,
                    Some(a) => a[0].as_object().and_then(|o| o.keys().next().cloned()),
                    None => Some("bearer".to_owned()),
                };
                let route = ROUTES.iter().find(|r| r.path == path && r.method.as_str().eq_ignore_ascii_case(method));
                if let Some(route) = route {
                    let expected = match route.auth {
                        Auth::Public => None,
                        Auth::User => Some("bearer"),
                        Auth::Service => Some("awsIam"),
                    };
                    assert_eq!(scheme.as_deref(), expected, "{method} {path}: security does not match the route");
                }
            }
        }
    }
    let served: BTreeSet<String> = ROUTES.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(documented, served);
}

/// The `Events:` of a function in template.yaml, as `METHOD /path` lines:
/// the resource block runs from `  {Name}Function:` to the next line with
/// two spaces of indent.
fn template_routes(template: &str, function: Function) -> BTreeSet<String> {
    let logical: String = function.name().split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
    let header = format!("  {logical}Function:");
    let block: Vec<&str> = template
        .lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| l.trim().is_empty() || l.starts_with("   "))
        .collect();
    assert!(!block.is_empty(), "{header} missing in template.yaml");
    let mut routes = BTreeSet::new();
    let mut path = None;
    for line in block.iter().map(|l| l.trim()) {
        if let Some(p) = line.strip_prefix("Path: ") {
            path = Some(p.to_owned());
        } else if let (Some(m), Some(p)) = (line.strip_prefix("Method: "), path.take()) {
            routes.insert(format!("{} {p}", m.to_uppercase()));
        }
    }
    routes
}

#[test]
fn the_template_deploys_every_route_on_its_function() {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    for function in Function::ALL {
        let expected: BTreeSet<String> =
            ROUTES.iter().filter(|r| r.function == function).map(|r| format!("{} {}", r.method, r.path)).collect();
        assert_eq!(template_routes(&template, function), expected, "{}", function.name());
    }
    for name in ["SyncWorkerFunction:", "NotifierFunction:", "ExpirySweepFunction:"] {
        assert!(template.contains(name), "{name} missing");
    }
    assert!(!template.contains("/dev/token"), "the development token route is local only");
}

/// The README's API section lists every operation (a frontend team reads
/// it first).
#[test]
fn the_readme_lists_every_operation() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split("\n## API\n").nth(1).unwrap().split("\n## ").next().unwrap();
    let missing: Vec<String> = ROUTES
        .iter()
        .map(|r| format!("`{} {}`", r.method, r.path))
        .filter(|op| !section.contains(op.as_str()))
        .collect();
    assert!(missing.is_empty(), "the README's API section does not list {missing:?}");
}
