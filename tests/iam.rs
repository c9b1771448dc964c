//! The template's IAM policies, held to what each function's code calls.
//! The table below is the need, function by function, with the flow that
//! needs it; the test fails on a missing permission and on an extra one
//! (least privilege), and on any write to the deployment's own app secrets
//! (`apps/*`), which only operators change.

use std::collections::BTreeSet;

const TABLE: &str = "table";
const DUE_INDEX: &str = "table/index/due";
const LIST_INDEX: &str = "table/index/list";
const SYNC_Q: &str = "queue/sync";
const NOTIFY_Q: &str = "queue/notify";
const BUCKET: &str = "bucket";
const DDB_RW: &[&str] = &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"];
const DDB_RWQ: &[&str] = &["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"];

/// Actions on resources: secrets as `secret:{path}` under the deployment's
/// prefix, S3 as `bucket/{prefix}`.
type Statement = (Vec<&'static str>, Vec<&'static str>);

/// Each function and its statements.
#[rustfmt::skip]
fn needs() -> Vec<(&'static str, Vec<Statement>)> {
    vec![
        // flows::connect_oauth::start (state, reconnect targets), flows::providers (BYO apps),
        // flows::installs::claim (the install's tokens become a grant's; initial sync, events)
        ("ConnectStartFunction", vec![
            (DDB_RW.to_vec(), vec![TABLE]),
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:apps/*", "secret:ws/*/apps/*"]),
            (vec!["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"], vec!["secret:ws/*/apps/*"]),
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:installs/*"]),
            // flows::connect_oauth::start (OAuth 1.0a temporary credentials)
            (vec!["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"], vec!["secret:oauth1/*"]),
            (vec!["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:ws/*/auth_*"]),
            (vec!["sqs:SendMessage"], vec![SYNC_Q, NOTIFY_Q]),
            // store::vault_packs: the auth packs (a change is a new version of the pack; a spilled credential is a secret of its own under it)
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:packs/auth-*"]),
        ]),
        // flows::connect_oauth::callback, flows::reconnect, flows::accounts::discover (after connect)
        ("OauthCallbackFunction", vec![
            (DDB_RW.to_vec(), vec![TABLE]),
            // flows::refresh::token_key (sealed access tokens)
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:token-key-*"]),
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:apps/*", "secret:ws/*/apps/*", "secret:ws/*/auth_*"]),
            (vec!["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:ws/*/auth_*"]),
            // flows::connect_oauth::callback (OAuth 1.0a temporary credentials, once)
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:oauth1/*"]),
            // flows::installs::receive (an install the platform started)
            (vec!["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:installs/*"]),
            (vec!["sqs:SendMessage"], vec![SYNC_Q, NOTIFY_Q]),
            // store::vault_packs: the auth packs (a change is a new version of the pack; a spilled credential is a secret of its own under it)
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:packs/auth-*"]),
        ]),
        // flows::connect_api_key (claims, fingerprint key, keys, initial sync)
        ("ApiKeyConnectFunction", vec![
            (DDB_RW.to_vec(), vec![TABLE]),
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:fingerprint-key-*"]),
            (vec!["secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:ws/*/conn_*"]),
            (vec!["sqs:SendMessage"], vec![SYNC_Q]),
            // flows::events (connection.status_changed)
            (vec!["sqs:SendMessage"], vec![NOTIFY_Q]),
            // store::vault_packs: the conn packs (a change is a new version of the pack; a spilled credential is a secret of its own under it)
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:packs/conn-*"]),
        ]),
        // flows::file_uploads (direct, automation, presigned; events)
        ("CsvUploadFunction", vec![
            (DDB_RW.to_vec(), vec![TABLE]),
            (vec!["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], vec!["bucket/costs/*"]),
            (vec!["s3:PutObject"], vec!["bucket/uploads/*"]),
            (vec!["sqs:SendMessage"], vec![NOTIFY_Q]),
        ]),
        // flows::file_uploads::process_landed (upload.processed)
        ("UploadProcessorFunction", vec![
            (DDB_RWQ.to_vec(), vec![TABLE]),
            (vec!["s3:GetObject", "s3:DeleteObject"], vec!["bucket/uploads/*"]),
            (vec!["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], vec!["bucket/costs/*"]),
            // RecordSink::size of a file already discarded: S3 answers a
            // missing object with 404 only to a role that may list (else 403)
            (vec!["s3:ListBucket"], vec![BUCKET]),
            (vec!["sqs:SendMessage"], vec![NOTIFY_Q]),
        ]),
        // flows::connections, flows::authorizations (removal revokes at the
        // platform, deletes secrets and alerts), flows::sync::sync_now,
        // flows::spend (the daily spend table)
        ("ConnectionsApiFunction", vec![
            (DDB_RW.to_vec(), vec![TABLE]),
            // store::listing: a page of connections from the list index, read together
            (vec!["dynamodb:Query"], vec![LIST_INDEX]),
            (vec!["dynamodb:BatchGetItem"], vec![TABLE]),
            // flows::refresh::token_key (sealed access tokens)
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:token-key-*"]),
            (vec!["s3:GetObject"], vec!["bucket/spend/*"]),
            // a day without a spend file: 404 only to a role that may list
            (vec!["s3:ListBucket"], vec![BUCKET]),
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:apps/*", "secret:ws/*/apps/*", "secret:ws/*/auth_*"]),
            (vec!["secretsmanager:DeleteSecret"], vec!["secret:ws/*/auth_*", "secret:ws/*/conn_*"]),
            (vec!["sqs:SendMessage"], vec![SYNC_Q, NOTIFY_Q]),
            // store::vault_packs: the auth packs (a change is a new version of the pack; a spilled credential is a secret of its own under it)
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:packs/auth-*"]),
            // store::vault_packs: the conn packs (a change is a new version of the pack; a spilled credential is a secret of its own under it)
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:DeleteSecret"], vec!["secret:packs/conn-*"]),
        ]),
        // flows::service (proxy, credentials, audit; flows::refresh on a 401)
        ("ServiceApiFunction", vec![
            (DDB_RW.to_vec(), vec![TABLE]),
            // flows::refresh::token_key (sealed access tokens)
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:token-key-*"]),
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:apps/*", "secret:ws/*/apps/*", "secret:ws/*/auth_*", "secret:ws/*/conn_*"]),
            (vec!["secretsmanager:PutSecretValue"], vec!["secret:ws/*/auth_*"]),
            (vec!["sqs:SendMessage"], vec![NOTIFY_Q]),
            // store::vault_packs: the auth packs (a change is a new version of the pack; a spilled credential is a secret of its own under it)
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"], vec!["secret:packs/auth-*"]),
            // store::vault_packs: the conn packs (a change is a new version of the pack; a spilled credential is a secret of its own under it)
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:packs/conn-*"]),
        ]),
        // flows::sync (with flows::refresh on a 401)
        ("SyncWorkerFunction", vec![
            (DDB_RW.to_vec(), vec![TABLE]),
            // flows::refresh::token_key (sealed access tokens)
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:token-key-*"]),
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:apps/*", "secret:ws/*/apps/*", "secret:ws/*/auth_*", "secret:ws/*/conn_*"]),
            (vec!["secretsmanager:PutSecretValue"], vec!["secret:ws/*/auth_*"]),
            // flows::sync (records) and flows::reports::sync_report (a
            // report day's raw rows, and its normalised spend facts)
            (vec!["s3:PutObject"], vec!["bucket/records/*", "bucket/reports/*", "bucket/spend/*"]),
            (vec!["sqs:SendMessage"], vec![SYNC_Q, NOTIFY_Q]),
            // store::vault_packs: the auth packs (a change is a new version of the pack; a spilled credential is a secret of its own under it)
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"], vec!["secret:packs/auth-*"]),
            // store::vault_packs: the conn packs (a change is a new version of the pack; a spilled credential is a secret of its own under it)
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:packs/conn-*"]),
        ]),
        // flows::sweep (refresh, probe, alerts, stalled runs)
        ("ExpirySweepFunction", vec![
            (DDB_RW.to_vec(), vec![TABLE]),
            // flows::refresh::token_key (sealed access tokens)
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:token-key-*"]),
            // flows::installs::expire
            (vec!["secretsmanager:DeleteSecret"], vec!["secret:installs/*"]),
            (vec!["dynamodb:Query"], vec![DUE_INDEX]),
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:apps/*", "secret:ws/*/apps/*", "secret:ws/*/auth_*"]),
            (vec!["secretsmanager:PutSecretValue"], vec!["secret:ws/*/auth_*"]),
            (vec!["sqs:SendMessage"], vec![SYNC_Q, NOTIFY_Q]),
            // store::vault_packs: the auth packs (a change is a new version of the pack; a spilled credential is a secret of its own under it)
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"], vec!["secret:packs/auth-*"]),
            // flows::secrets::pack_grant (a grant's own secret, once moved into a pack) and
            // flows::secrets::forget_orphans (a grant's or key's secret no item holds, packed or not)
            (vec!["secretsmanager:DeleteSecret"], vec!["secret:ws/*/auth_*", "secret:ws/*/conn_*", "secret:packs/auth-*", "secret:packs/conn-*"]),
            // flows::secrets::pack_key (the scheduler moves a key stored before packs into one)
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:ws/*/conn_*"]),
            (vec!["secretsmanager:GetSecretValue", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue"], vec!["secret:packs/conn-*"]),
            // flows::file_uploads::expire_waiting: RecordSink::size of each
            // upload left waiting, and process_landed for one that landed
            (vec!["s3:GetObject", "s3:DeleteObject"], vec!["bucket/uploads/*"]),
            (vec!["s3:PutObject", "s3:GetObject", "s3:DeleteObject"], vec!["bucket/costs/*"]),
            (vec!["s3:ListBucket"], vec![BUCKET]),
        ]),
        // flows::alerts
        ("NotifierFunction", vec![
            (DDB_RW.to_vec(), vec![TABLE]),
            (vec!["sqs:SendMessage"], vec![NOTIFY_Q]),
            (vec!["ses:SendEmail"], vec!["ses:identity/*", "ses:configuration-set/${EmailConfigurationSet}"]),
            // flows::events::deliver: the bus, and the webhook's signing secret
            (vec!["events:PutEvents"], vec!["bus"]),
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:webhook-*"]),
            // flows::alerts::unsubscribe_link: the key that signs emails' unsubscribe links
            (vec!["secretsmanager:GetSecretValue"], vec!["secret:token-key-*"]),
        ]),
    ]
}

fn normalise(resource: &str) -> String {
    let r = resource.trim().trim_start_matches("- ").trim();
    let r = r.strip_prefix("!Sub ").or_else(|| r.strip_prefix("!GetAtt ")).unwrap_or(r);
    let secret = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:connections/${Stage}/";
    if let Some(path) = r.strip_prefix(secret) {
        return format!("secret:{path}");
    }
    if let Some(rest) = r.strip_prefix("arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:") {
        return format!("ses:{rest}");
    }
    match r {
        "StateTable.Arn" => TABLE.into(),
        "${StateTable.Arn}/index/due" => DUE_INDEX.into(),
        "${StateTable.Arn}/index/list" => LIST_INDEX.into(),
        "SyncQueue.Arn" => SYNC_Q.into(),
        "NotifyQueue.Arn" => NOTIFY_Q.into(),
        "EventBus.Arn" => "bus".into(),
        "RecordsBucket.Arn" => BUCKET.into(),
        _ => r.replace("${RecordsBucket.Arn}/", "bucket/"),
    }
}

/// The (action, resource) pairs a function's Policies grant.
pub(crate) fn granted(template: &str, function: &str) -> BTreeSet<(String, String)> {
    let start = template.find(&format!("\n  {function}:\n")).unwrap_or_else(|| panic!("{function} missing"));
    // The function's block: up to the next resource (two spaces of indent)
    // or the next top-level section.
    let lines: Vec<&str> = template[start + 1..].lines().collect();
    let next = lines
        .iter()
        .skip(1)
        .position(|l| !l.is_empty() && (!l.starts_with("  ") || !l[2..].starts_with(' ')))
        .map_or(lines.len(), |i| i + 1);
    let block = lines[..next].join("\n");
    let policies = &block[block.find("      Policies:").unwrap_or_else(|| panic!("{function} has no Policies"))..];
    let mut out = BTreeSet::new();
    let (mut actions, mut resources): (Vec<String>, Vec<String>) = (vec![], vec![]);
    let mut in_resources = false;
    let mut flush = |actions: &mut Vec<String>, resources: &mut Vec<String>| {
        for a in actions.iter() {
            for r in resources.iter() {
                out.insert((a.clone(), normalise(r)));
            }
        }
        actions.clear();
        resources.clear();
    };
    for line in policies.lines() {
        let l = line.trim();
        if l.starts_with("- Effect:") {
            flush(&mut actions, &mut resources);
            assert_eq!(l, "- Effect: Allow", "{function}: only Allow statements");
            in_resources = false;
        } else if let Some(list) = l.strip_prefix("Action: [") {
            actions = list.trim_end_matches(']').split(',').map(|a| a.trim().to_owned()).collect();
        } else if let Some(r) = l.strip_prefix("Resource:") {
            let r = r.trim();
            if r.is_empty() {
                in_resources = true;
            } else if let Some(list) = r.strip_prefix('[') {
                resources.extend(list.trim_end_matches(']').split(',').map(|x| x.trim().to_owned()));
            } else {
                resources.push(r.to_owned());
            }
        } else if in_resources && l.starts_with("- ") {
            resources.push(l.to_owned());
        }
    }
    flush(&mut actions, &mut resources);
    out
}

#[test]
fn every_function_has_exactly_the_permissions_its_code_needs() {
    let template =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml")).unwrap();
    for (function, statements) in needs() {
        let expected: BTreeSet<(String, String)> = statements
            .iter()
            .flat_map(|(actions, resources)| {
                actions.iter().flat_map(move |a| resources.iter().map(move |r| (a.to_string(), r.to_string())))
            })
            .collect();
        let got = granted(&template, function);
        let missing: Vec<_> = expected.difference(&got).collect();
        let extra: Vec<_> = got.difference(&expected).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{function}:\n  missing {missing:?}\n  extra {extra:?}");
        for (action, resource) in &got {
            let writes = !action.ends_with("GetSecretValue");
            assert!(
                !(action.starts_with("secretsmanager:") && writes && resource.starts_with("secret:apps/")),
                "{function} may change the deployment's app secrets ({action} on {resource})"
            );
            assert!(resource != "secret:*", "{function}: {action} on every secret of the deployment");
        }
    }
}

#[test]
fn the_checker_reads_a_planted_permission() {
    let planted = "\n  XFunction:\n    Properties:\n      Policies:\n        - Statement:\n            - Effect: Allow\n              Action: [secretsmanager:DeleteSecret]\n              Resource: !Sub arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:connections/${Stage}/apps/*\n\n  Next:\n";
    let got = granted(planted, "XFunction");
    assert_eq!(got, BTreeSet::from([("secretsmanager:DeleteSecret".to_owned(), "secret:apps/*".to_owned())]));
}

/// The service routes are for the deployer's backend: each is AWS_IAM in
/// the template (and only they are), and the invoke policy the template
/// offers the backend reaches those routes and nothing else.
#[test]
fn service_routes_take_aws_iam_and_the_invoke_policy_reaches_only_them() {
    use shared::entry::http::{Auth, ROUTES};
    let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    // Every HttpApi event: its path and whether its authorizer is AWS_IAM.
    let lines: Vec<&str> = template.lines().collect();
    let mut iam_paths = BTreeSet::new();
    let mut other_paths = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(path) = line.trim().strip_prefix("Path: ") else { continue };
        let block: Vec<&str> =
            lines[i + 1..].iter().take_while(|l| !l.trim().starts_with("Path: ")).take(4).copied().collect();
        let method = block.iter().find_map(|l| l.trim().strip_prefix("Method: ")).unwrap_or("?");
        let key = format!("{method} {path}");
        if block.iter().any(|l| l.trim() == "Authorizer: AWS_IAM") {
            iam_paths.insert(key);
        } else {
            other_paths.insert(key);
        }
    }
    let service: BTreeSet<String> =
        ROUTES.iter().filter(|r| r.auth == Auth::Service).map(|r| format!("{} {}", r.method, r.path)).collect();
    assert_eq!(service.len(), 6, "five proxy methods and the credentials route");
    assert_eq!(iam_paths, service, "exactly the service routes are AWS_IAM");
    assert!(other_paths.iter().all(|p| !p.contains("/v1/service/")));
    assert!(template.contains("EnableIamAuthorizer: true"));
    let policy =
        template.split("\n  ServiceInvokePolicy:\n").nth(1).expect("ServiceInvokePolicy").split("\n\n").next().unwrap();
    assert!(policy.contains("Action: [execute-api:Invoke]"), "{policy}");
    let resources: Vec<&str> = policy.lines().filter_map(|l| l.trim().strip_prefix("Resource: ")).collect();
    assert_eq!(
        resources,
        ["!Sub arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/*/*/v1/service/*"]
    );
}
