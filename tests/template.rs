//! The template as CloudFormation sees it (after the SAM transform, by
//! `infra/template/translate.py` with the translator cfn-lint installs),
//! held to the operating rules: every function's logs kept for the
//! retention parameter, an errors and a throttles alarm per function, a
//! concurrency cap per queue consumer, visibility timeouts at six times the
//! consumer's timeout, a dead-letter queue per source with a depth alarm
//! (EventBridge's own, writable by it), the stateful resources retained, an
//! alarm topic CloudWatch can publish to, the operator's other alarms and a
//! dashboard, and a schedule name that a second stage does not collide with;
//! and every function's environment, at the parameters' defaults, read by
//! the code's own configuration without an error.

use serde_json::Value;
use std::collections::BTreeSet;

fn translated() -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new("python3")
        .arg(root.join("infra/template/translate.py"))
        .output()
        .expect("python3 runs (infra/test installs cfn-lint, whose SAM translator this uses)");
    assert!(
        out.status.success(),
        "the template did not translate (pip install cfn-lint): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the translated template is JSON")
}

fn of_type<'t>(t: &'t Value, kind: &str) -> Vec<(&'t String, &'t Value)> {
    t["Resources"].as_object().unwrap().iter().filter(|(_, r)| r["Type"] == kind).collect()
}

fn reference(v: &Value) -> Option<&str> {
    v.get("Ref").and_then(Value::as_str).or_else(|| v.get("Fn::GetAtt").and_then(|a| a[0].as_str()))
}

#[test]
fn the_translated_template_keeps_the_operating_rules() {
    let t = translated();
    let r = &t["Resources"];
    let functions = of_type(&t, "AWS::Lambda::Function");
    assert_eq!(functions.len(), 10);
    let alarms = of_type(&t, "AWS::CloudWatch::Alarm");
    let alarm_on = |namespace: &str, metric: &str, dimension: &str| {
        alarms.iter().any(|(_, a)| {
            let p = &a["Properties"];
            p["Namespace"] == namespace
                && p["MetricName"] == metric
                && p["Dimensions"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| reference(&d["Value"]) == Some(dimension)))
                && p["AlarmActions"].as_array().is_some_and(|a| a.iter().any(|a| reference(a) == Some("OpsTopic")))
        })
    };
    let mut problems = Vec::new();
    for (name, f) in &functions {
        let p = &f["Properties"];
        // Logs: its own group, kept for LogRetentionDays.
        match reference(&p["LoggingConfig"]["LogGroup"]) {
            Some(group) if r[group]["Properties"]["RetentionInDays"]["Ref"] == "LogRetentionDays" => {}
            other => problems.push(format!("{name}: logs not in a group kept LogRetentionDays ({other:?})")),
        }
        for metric in ["Errors", "Throttles"] {
            if !alarm_on("AWS/Lambda", metric, name) {
                problems.push(format!("{name}: no {metric} alarm to the ops topic"));
            }
        }
    }
    // Queue consumers: capped, with visibility at 6 x the function's timeout.
    let mappings = of_type(&t, "AWS::Lambda::EventSourceMapping");
    assert!(mappings.len() >= 2);
    let mut consumed = BTreeSet::new();
    for (name, m) in &mappings {
        let p = &m["Properties"];
        if p["ScalingConfig"]["MaximumConcurrency"].is_null() {
            problems.push(format!("{name}: no ScalingConfig.MaximumConcurrency"));
        }
        let queue = reference(&p["EventSourceArn"]).unwrap();
        let function = reference(&p["FunctionName"]).unwrap();
        consumed.insert(queue.to_owned());
        let timeout = r[function]["Properties"]["Timeout"].as_u64().unwrap();
        let visibility = r[queue]["Properties"]["VisibilityTimeout"].as_u64().unwrap_or(30);
        if visibility != 6 * timeout {
            problems.push(format!("{queue}: visibility {visibility} s, not 6 x {function}'s {timeout} s"));
        }
        if !alarm_on("AWS/SQS", "ApproximateAgeOfOldestMessage", queue) {
            problems.push(format!("{queue}: no alarm on the age of its oldest message"));
        }
    }
    // Dead letters: every redrive and every rule has a DLQ, alarmed; a
    // rule's DLQ lets EventBridge write and is no queue consumer's DLQ.
    let mut consumer_dlqs = BTreeSet::new();
    for queue in &consumed {
        match reference(&r[queue.as_str()]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) {
            Some(dlq) => {
                consumer_dlqs.insert(dlq.to_owned());
            }
            None => problems.push(format!("{queue}: no dead-letter queue")),
        }
    }
    let queue_dlqs = consumer_dlqs.clone();
    for (name, rule) in of_type(&t, "AWS::Events::Rule") {
        for target in rule["Properties"]["Targets"].as_array().unwrap() {
            let Some(dlq) = reference(&target["DeadLetterConfig"]["Arn"]) else {
                problems.push(format!("{name}: a target without a dead-letter queue"));
                continue;
            };
            if queue_dlqs.contains(dlq) {
                problems.push(format!("{name}: its dead letters would land in a queue consumer's DLQ {dlq}"));
            }
            let writable = of_type(&t, "AWS::SQS::QueuePolicy").iter().any(|(_, q)| {
                let p = &q["Properties"];
                p["Queues"].as_array().unwrap().iter().any(|q| reference(q) == Some(dlq))
                    && p["PolicyDocument"]["Statement"].as_array().unwrap().iter().any(|s| {
                        s["Principal"]["Service"] == "events.amazonaws.com" && s["Action"] == "sqs:SendMessage"
                    })
            });
            if !writable {
                problems.push(format!("{name}: EventBridge may not write its dead-letter queue {dlq}"));
            }
            consumer_dlqs.insert(dlq.to_owned());
        }
    }
    for dlq in &consumer_dlqs {
        if !alarm_on("AWS/SQS", "ApproximateNumberOfMessagesVisible", dlq) {
            problems.push(format!("{dlq}: no depth alarm"));
        }
    }
    // Stateful resources survive a delete and a replacement.
    for kind in ["AWS::DynamoDB::Table", "AWS::S3::Bucket", "AWS::SQS::Queue"] {
        for (name, res) in of_type(&t, kind) {
            if res["DeletionPolicy"] != "Retain" || res["UpdateReplacePolicy"] != "Retain" {
                problems.push(format!("{name}: not retained on delete and replacement"));
            }
        }
    }
    // The frontend SDK PUTs a large file straight to the bucket by its
    // presigned URL, from the browser: the bucket must answer the CORS
    // preflight for the frontend's origins, or every large upload fails in
    // a browser (a client outside a browser, and moto, never ask).
    let takes_browser_puts =
        r["RecordsBucket"]["Properties"]["CorsConfiguration"]["CorsRules"].as_array().is_some_and(|rules| {
            rules.iter().any(|rule| {
                let has = |field: &str, v: &str| rule[field].as_array().is_some_and(|a| a.iter().any(|x| x == v));
                has("AllowedMethods", "PUT")
                    && has("AllowedHeaders", "content-type")
                    && rule["AllowedOrigins"]["Ref"] == "AllowedOrigins"
            })
        });
    if !takes_browser_puts {
        problems.push("the records bucket refuses the frontend's presigned PUTs (no CORS rule)".into());
    }
    // The alarm topic: a key CloudWatch may use (not the AWS-managed SNS key).
    let topic = &r["OpsTopic"]["Properties"];
    match reference(&topic["KmsMasterKeyId"]) {
        Some(key) => {
            let statements = r[key]["Properties"]["KeyPolicy"]["Statement"].as_array().unwrap();
            if !statements.iter().any(|s| s["Principal"]["Service"] == "cloudwatch.amazonaws.com") {
                problems.push("the alarm topic's key does not let CloudWatch publish".into());
            }
        }
        None => {
            problems.push(format!("the alarm topic's key {} does not let CloudWatch publish", topic["KmsMasterKeyId"]))
        }
    }
    // The operator's other alarms, and the dashboard.
    let named = |n: &str| r.get(n).is_some_and(|a| a["Type"] == "AWS::CloudWatch::Alarm");
    for alarm in ["Api5xxAlarm", "SyncFailureRateAlarm", "StaleConnectionsAlarm"] {
        if !named(alarm) {
            problems.push(format!("no {alarm}"));
        }
    }
    if of_type(&t, "AWS::CloudWatch::Dashboard").is_empty() {
        problems.push("no dashboard".into());
    }
    // A second stage in the same account and region: no fixed schedule names.
    for (name, s) in of_type(&t, "AWS::Scheduler::Schedule") {
        if !s["Properties"]["Name"].is_null() {
            problems.push(format!("{name}: a fixed name"));
        }
    }
    assert!(problems.is_empty(), "the template breaks its operating rules:\n{}", problems.join("\n"));
}

/// One build for every function: each deploys the `functions` binary with
/// the same build metadata (so `sam build` builds it once) and names its job
/// in `Handler`, a job that binary knows; every job is deployed once, as
/// the function its logical id names.
#[test]
fn every_function_deploys_the_one_binary_and_names_a_known_job() {
    use shared::wiring::functions::Job;
    let t = translated();
    let functions = of_type(&t, "AWS::Lambda::Function");
    let metadata: BTreeSet<String> = functions.iter().map(|(_, f)| f["Metadata"].to_string()).collect();
    assert_eq!(
        metadata.into_iter().collect::<Vec<_>>(),
        [r#"{"BuildMethod":"rust-cargolambda","BuildProperties":{"Binary":"functions"}}"#],
        "every function must share one build"
    );
    let mut deployed = BTreeSet::new();
    for (name, f) in &functions {
        let handler = f["Properties"]["Handler"].as_str().unwrap_or_default();
        let job = Job::from_name(handler).unwrap_or_else(|| panic!("{name}: Handler {handler:?} is no job"));
        let logical: String = job.name().split('-').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
        assert_eq!(**name, format!("{logical}Function"), "{name} runs {handler}");
        deployed.insert(job.name());
    }
    assert_eq!(deployed, Job::ALL.iter().map(|j| j.name()).collect());
}

/// Every function starts with the environment the template gives it: with
/// each parameter at its default, the configuration reads without an error
/// (a bad default or a variable the code needs and the template lacks would
/// show only as a cold start failing on AWS), on the AWS backend, with the
/// deployment's own table, bucket and queues.
#[test]
fn every_function_reads_its_configuration_from_the_template_s_defaults() {
    let t = translated();
    for (name, f) in of_type(&t, "AWS::Lambda::Function") {
        let variables =
            f["Properties"]["Environment"]["Variables"].as_object().unwrap_or_else(|| panic!("{name}: no environment"));
        let env: std::collections::HashMap<String, String> =
            variables.iter().map(|(k, v)| (k.clone(), resolved(&t, v))).collect();
        let config = shared::config::Config::from_lookup(|k| env.get(k).cloned())
            .unwrap_or_else(|e| panic!("{name} would not start: {e}\n{env:#?}"));
        assert_eq!(config.backend, shared::config::Backend::Aws { endpoint: None }, "{name}");
        assert_eq!(
            (config.table_name.as_str(), config.bucket_name.as_str()),
            ("statetable", "recordsbucket"),
            "{name}"
        );
        for queue in shared::ports::QueueKind::ALL {
            assert!(config.queue_urls.get(&queue).is_some_and(|u| u.starts_with("https://sqs.")), "{name}: {queue:?}");
        }
        assert_eq!(config.secret_prefix, "connections/dev", "{name}");
        assert!(config.webhook_url.is_none(), "{name}");
        // The API's URL: learnt from each request, but the notifier serves
        // none (its emails' unsubscribe links need it), so it is told.
        let base = if *name == "NotifierFunction" { "https://httpapi.execute-api.us-east-1.amazonaws.com" } else { "" };
        assert_eq!(config.public_base_url, base, "{name}");
    }
}

/// A template value as CloudFormation would give it with every parameter
/// at its default: pseudo parameters and resources by stand-ins (a queue's
/// `Ref` is its URL), conditions evaluated.
fn resolved(t: &Value, v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Object(o) => {
            if let Some(name) = o.get("Ref").and_then(Value::as_str) {
                return named(t, name);
            }
            if let Some(at) = o.get("Fn::GetAtt") {
                return format!("{}-{}", at[0].as_str().unwrap(), at[1].as_str().unwrap()).to_lowercase();
            }
            if let Some(sub) = o.get("Fn::Sub") {
                let text = sub.as_str().or_else(|| sub[0].as_str()).unwrap();
                let mut out = String::new();
                let mut rest = text;
                while let Some(at) = rest.find("${") {
                    out.push_str(&rest[..at]);
                    let end = at + rest[at..].find('}').unwrap();
                    let var = &rest[at + 2..end];
                    out.push_str(&match sub.get(1).and_then(|m| m.get(var)) {
                        Some(local) => resolved(t, local),
                        None if var.contains('.') && !var.starts_with("AWS::") => var.replace('.', "-").to_lowercase(),
                        None => named(t, var),
                    });
                    rest = &rest[end + 1..];
                }
                out.push_str(rest);
                return out;
            }
            if let Some(join) = o.get("Fn::Join") {
                let parts: Vec<String> = match &join[1] {
                    Value::Array(items) => items.iter().map(|i| resolved(t, i)).collect(),
                    list => vec![resolved(t, list)],
                };
                return parts.join(join[0].as_str().unwrap());
            }
            if let Some(choice) = o.get("Fn::If") {
                let branch = if condition(t, choice[0].as_str().unwrap()) { &choice[1] } else { &choice[2] };
                return resolved(t, branch);
            }
            panic!("an intrinsic this test does not know: {v}")
        }
        other => panic!("a value this test does not know: {other}"),
    }
}

fn named(t: &Value, name: &str) -> String {
    match name {
        "AWS::Region" => return "us-east-1".into(),
        "AWS::AccountId" => return "123456789012".into(),
        "AWS::Partition" => return "aws".into(),
        "AWS::StackName" => return "connections".into(),
        "AWS::URLSuffix" => return "amazonaws.com".into(),
        "AWS::NoValue" => return String::new(),
        _ => {}
    }
    if let Some(parameter) = t["Parameters"].get(name) {
        return match &parameter["Default"] {
            Value::Null => format!("required-{name}"),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    }
    let resource = &t["Resources"][name];
    assert!(!resource.is_null(), "a Ref to nothing: {name}");
    match resource["Type"].as_str() {
        Some("AWS::SQS::Queue") => format!("https://sqs.us-east-1.amazonaws.com/123456789012/{}", name.to_lowercase()),
        _ => name.to_lowercase(),
    }
}

fn condition(t: &Value, name: &str) -> bool {
    fn eval(t: &Value, v: &Value) -> bool {
        let o = v.as_object().unwrap();
        if let Some(name) = o.get("Condition").and_then(Value::as_str) {
            return condition(t, name);
        }
        if let Some(a) = o.get("Fn::Not") {
            return !eval(t, &a[0]);
        }
        if let Some(a) = o.get("Fn::Equals") {
            return resolved(t, &a[0]) == resolved(t, &a[1]);
        }
        if let Some(a) = o.get("Fn::And") {
            return a.as_array().unwrap().iter().all(|c| eval(t, c));
        }
        if let Some(a) = o.get("Fn::Or") {
            return a.as_array().unwrap().iter().any(|c| eval(t, c));
        }
        panic!("a condition this test does not know: {v}")
    }
    eval(t, &t["Conditions"][name])
}
