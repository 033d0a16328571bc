//! The Grafana dashboard compose provisions (`compose/grafana/`) asks only for what the
//! services export: every PromQL `expr` of every panel is parsed, and each metric name
//! in it (a histogram's `_bucket`/`_sum`/`_count` taken back to its family) must be a
//! family one of the services renders on its `/metrics`, read from a running platform
//! (the `stack` binary), with the label names the query uses. The JSON's shape
//! (datasource on every panel, unique titles) and the provisioning files against the
//! compose mounts are checked without a platform.
//!
//! What holds for the families that only move on a rare event (found in
//! `ops_http::Metrics::render`): an unlabelled counter, gauge or histogram is rendered
//! from start-up, at 0 (`payments_dead_letters_total`,
//! `notifications_dead_letters_total`, `gateway_requests_shed_total`,
//! `orders_calls_shed_total`), so reading `/metrics` finds it. A labelled family
//! renders nothing, not even its `# HELP`/`# TYPE` lines, until it has a series, so
//! the platform is made to produce one of each: an order through the gateway
//! (`opp_http_*`, `gateway_auth_requests_total{outcome="anonymous"}`), its payment
//! result applied (`orders_final_status_total`), the consumers' lag measured
//! (`kafka_consumer_lag`, every 2 s), and payments run with `PAYMENTS_PROVIDER=stripe`
//! against a local server answering the PaymentIntents call
//! (`payments_provider_calls_total`, `payments_provider_call_seconds`, registered only
//! with that provider).

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{Read, Write},
    net::TcpListener,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use crate::stack_binary::RunningStack;
use testkit::{free_port, http_request};

const DASHBOARD: &str = "compose/grafana/dashboards/order-platform.json";
const DATASOURCES: &str = "compose/grafana/provisioning/datasources/prometheus.yaml";
const DASHBOARD_PROVIDERS: &str = "compose/grafana/provisioning/dashboards/dashboards.yaml";

/// The families the dashboard must show (its panels' reason to exist).
const REQUIRED: &[&str] = &[
    "opp_http_requests_total",
    "opp_http_request_duration_seconds",
    "gateway_http_requests_total",
    "gateway_http_responses_5xx_total",
    "gateway_http_responses_4xx_total",
    "gateway_auth_requests_total",
    "gateway_requests_shed_total",
    "orders_calls_shed_total",
    "orders_created_total",
    "outbox_backlog",
    "outbox_publish_delay_seconds",
    "kafka_consumer_lag",
    "payments_dead_letters_total",
    "notifications_dead_letters_total",
    "payments_succeeded_total",
    "payments_failed_total",
    "payments_provider_calls_total",
];

/// Series Prometheus makes itself for every scrape target, with only its target labels.
const SCRAPE_SERIES: &[&str] = &["up"];

/// Labels Prometheus adds to every scraped series (compose/prometheus.yml's job, and
/// the target's address).
const TARGET_LABELS: &[&str] = &["job", "instance"];

fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn dashboard() -> serde_json::Value {
    let path = repository_root().join(DASHBOARD);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{DASHBOARD}: {err}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{DASHBOARD} is not JSON: {err}"))
}

/// A YAML file as JSON, through PyYAML (as nix/check-compose.py reads compose).
fn yaml(relative: &str) -> serde_json::Value {
    let output = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(repository_root().join(relative))
        .output()
        .expect("python3 runs (scripts/setup-test-tools.sh installs PyYAML)");
    assert!(
        output.status.success(),
        "{relative} is not YAML: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every panel, those inside rows included.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut all = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        all.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            all.extend(inner);
        }
    }
    all
}

/// (panel title, expr) of every target of every panel.
fn queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("").to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {title:?}: a target without an expr"));
            queries.push((title.clone(), expr.to_owned()));
        }
    }
    queries
}

// --- PromQL ---------------------------------------------------------------------------

/// PromQL's aggregation operators.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// PromQL's functions: an identifier followed by `(`.
const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_sum",
    "holt_winters",
    "double_exponential_smoothing",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "ln",
    "log2",
    "log10",
    "minute",
    "month",
    "predict_linear",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sort",
    "sort_desc",
    "sort_by_label",
    "sort_by_label_desc",
    "sqrt",
    "time",
    "timestamp",
    "vector",
    "year",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "present_over_time",
    "mad_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "cos",
    "cosh",
    "sin",
    "sinh",
    "tan",
    "tanh",
    "deg",
    "rad",
    "pi",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Other keywords and binary operators spelled as words.
const KEYWORDS: &[&str] = &[
    "bool", "and", "or", "unless", "offset", "atan2", "inf", "nan", "start", "end",
];

/// What one PromQL expression names.
#[derive(Debug, Default, PartialEq)]
struct Names {
    /// Metric names of its selectors, as written (`x_bucket` stays `x_bucket`).
    metrics: Vec<String>,
    /// Label names: of matchers (`{a="x"}`) and of `by`/`without`/`on`/... lists.
    labels: Vec<String>,
    /// Functions and aggregation operators.
    functions: Vec<String>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names, label names and functions of `expr`; an error for what is not
/// PromQL this parser knows (an unknown function, an unclosed string or bracket).
fn parse_promql(expr: &str) -> Result<Names, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Names::default();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let read_ident = |i: &mut usize| {
        let start = *i;
        while *i < chars.len() && is_ident(chars[*i]) {
            *i += 1;
        }
        chars[start..*i].iter().collect::<String>()
    };
    let skip_string = |i: &mut usize| -> Result<(), String> {
        let quote = chars[*i];
        *i += 1;
        while *i < chars.len() && chars[*i] != quote {
            if chars[*i] == '\\' && quote != '`' {
                *i += 1;
            }
            *i += 1;
        }
        if *i >= chars.len() {
            return Err(format!("unclosed string in {expr:?}"));
        }
        *i += 1;
        Ok(())
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            skip_string(&mut i)?;
        } else if c == '[' {
            // A range or subquery: durations and Grafana's $__rate_interval.
            let close = chars[i..]
                .iter()
                .position(|&c| c == ']')
                .ok_or_else(|| format!("unclosed [ in {expr:?}"))?;
            i += close + 1;
        } else if c == '{' {
            // Label matchers: name op "value", ...
            i += 1;
            loop {
                skip_space(&mut i);
                match chars.get(i) {
                    None => return Err(format!("unclosed {{ in {expr:?}")),
                    Some('}') => {
                        i += 1;
                        break;
                    }
                    Some(',') => i += 1,
                    Some('"' | '\'' | '`') => skip_string(&mut i)?,
                    Some(&c) if is_ident_start(c) => names.labels.push(read_ident(&mut i)),
                    Some('=' | '!' | '~') => i += 1,
                    Some(other) => {
                        return Err(format!("unexpected {other:?} in a matcher of {expr:?}"));
                    }
                }
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number (0.99, 1e3, 0x1f) or a duration outside brackets (offset 5m).
            while i < chars.len() && (is_ident(chars[i]) || chars[i] == '.') {
                i += 1;
            }
        } else if c == '$' {
            // A Grafana variable ($__range, $job) outside a string or a range.
            i += 1;
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                read_ident(&mut i);
            }
        } else if is_ident_start(c) {
            let ident = read_ident(&mut i);
            let mut next = i;
            skip_space(&mut next);
            // An aggregation may put its `by`/`without` clause before its argument.
            let mut after = next;
            let modifier = read_ident(&mut after);
            let followed_by_paren = chars.get(next) == Some(&'(')
                || (AGGREGATIONS.contains(&ident.as_str())
                    && ["by", "without"].contains(&modifier.as_str()));
            if LABEL_LIST_KEYWORDS.contains(&ident.as_str()) {
                if followed_by_paren {
                    let close = chars[next..]
                        .iter()
                        .position(|&c| c == ')')
                        .ok_or_else(|| format!("unclosed ( after {ident} in {expr:?}"))?;
                    let list: String = chars[next + 1..next + close].iter().collect();
                    names.labels.extend(
                        list.split(',')
                            .map(str::trim)
                            .filter(|label| !label.is_empty())
                            .map(str::to_owned),
                    );
                    i = next + close + 1;
                }
            } else if KEYWORDS.contains(&ident.as_str()) {
                // An operator or keyword, not a name.
            } else if followed_by_paren {
                if !FUNCTIONS.contains(&ident.as_str()) && !AGGREGATIONS.contains(&ident.as_str()) {
                    return Err(format!("{ident}( is not a PromQL function in {expr:?}"));
                }
                names.functions.push(ident);
            } else {
                names.metrics.push(ident);
            }
        } else {
            // Operators, parentheses, commas.
            i += 1;
        }
    }
    Ok(names)
}

#[test]
fn dashboard_promql_parser_finds_metric_and_label_names() {
    let names = parse_promql(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(opp_http_request_duration_seconds_bucket{job="$job",service="gateway",status=~"5.."}[$__rate_interval])))"#,
    )
    .unwrap();
    assert_eq!(
        names,
        Names {
            metrics: vec!["opp_http_request_duration_seconds_bucket".to_owned()],
            labels: ["le", "route", "job", "service", "status"]
                .map(str::to_owned)
                .to_vec(),
            functions: ["histogram_quantile", "sum", "rate"]
                .map(str::to_owned)
                .to_vec(),
        }
    );
    // Binary operators, `without`, numbers, strings holding braces and names.
    let names = parse_promql(
        r#"sum without (instance) (rate(a_total{route="/orders/{id}"}[5m])) / on (job) group_left (route) b_total > bool 1e3 or max(c) by (topic)"#,
    )
    .unwrap();
    assert_eq!(names.metrics, ["a_total", "b_total", "c"]);
    assert_eq!(names.labels, ["instance", "route", "job", "route", "topic"]);
    assert_eq!(names.functions, ["sum", "rate", "max"]);
    for bad in [
        "rates(x_total[5m])",
        r#"x_total{job="a}"#,
        "rate(x_total[5m)",
        "x_total{job",
    ] {
        assert!(parse_promql(bad).is_err(), "{bad} accepted");
    }
}

// --- the dashboard on its own ---------------------------------------------------------

#[test]
fn dashboard_json_has_a_datasource_on_every_panel_and_unique_titles() {
    let dashboard = dashboard();
    assert_eq!(dashboard["uid"], "order-platform");
    let schema = dashboard["schemaVersion"].as_i64().expect("schemaVersion");
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");
    let mut titles = BTreeSet::new();
    let mut with_queries = 0;
    for panel in panels(&dashboard) {
        let title = panel["title"].as_str().expect("every panel has a title");
        assert!(!title.trim().is_empty(), "a panel with an empty title");
        assert!(titles.insert(title), "two panels are titled {title:?}");
        let kind = panel["type"].as_str().expect("every panel has a type");
        if kind == "row" {
            assert!(panel["targets"].is_null(), "row {title:?} has queries");
            continue;
        }
        assert!(
            ["timeseries", "stat"].contains(&kind),
            "panel {title:?} is a {kind}"
        );
        assert_eq!(
            panel["datasource"],
            serde_json::json!({"type": "prometheus", "uid": "prometheus"}),
            "panel {title:?}'s datasource"
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {title:?} has no query");
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            assert!(
                target["datasource"].is_null() || target["datasource"] == panel["datasource"],
                "a target of {title:?} on another datasource"
            );
            let ref_id = target["refId"].as_str().expect("refId");
            assert!(ref_ids.insert(ref_id), "{title:?}: refId {ref_id} twice");
            let expr = target["expr"].as_str().expect("expr");
            parse_promql(expr).unwrap_or_else(|err| panic!("panel {title:?}: {err}"));
            with_queries += 1;
        }
    }
    assert!(with_queries >= REQUIRED.len(), "{with_queries} queries");
    // Every family the dashboard is for is on it.
    let named: BTreeSet<String> = queries(&dashboard)
        .iter()
        .flat_map(|(_, expr)| parse_promql(expr).unwrap().metrics)
        .map(|name| histogram_family(&name).to_owned())
        .collect();
    for family in REQUIRED {
        assert!(named.contains(*family), "no panel shows {family}");
    }
}

/// `x` for `x_bucket`, `x_sum` and `x_count`; else the name itself (whether it is a
/// histogram is for the families to say).
fn histogram_family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

#[test]
fn dashboard_provisioning_points_at_what_compose_mounts() {
    let compose = yaml("docker-compose.yaml");
    let grafana = &compose["services"]["grafana"];
    let image = grafana["image"].as_str().expect("grafana's image");
    let tag = image
        .strip_prefix("grafana/grafana:")
        .unwrap_or_else(|| panic!("{image} is not the official grafana/grafana"));
    assert!(
        tag.split('.').count() == 3 && tag.split('.').all(|n| n.parse::<u32>().is_ok()),
        "grafana pinned to a version, not {tag}"
    );
    assert!(
        grafana["depends_on"]
            .as_array()
            .is_some_and(|deps| deps.contains(&"prometheus".into()))
            || !grafana["depends_on"]["prometheus"].is_null(),
        "grafana depends on prometheus"
    );
    // Container path of each read-only bind of compose/grafana/...
    let mut mounts = BTreeMap::new();
    for volume in grafana["volumes"].as_array().expect("grafana's volumes") {
        let volume = volume.as_str().expect("short volume syntax");
        let parts: Vec<&str> = volume.split(':').collect();
        assert_eq!(parts.len(), 3, "{volume}: source:target:ro");
        assert_eq!(parts[2], "ro", "{volume} mounted read-only");
        mounts.insert(parts[0], parts[1]);
    }
    assert_eq!(
        mounts.get("./compose/grafana/provisioning"),
        Some(&"/etc/grafana/provisioning"),
        "the provisioning directory where Grafana reads it"
    );
    let dashboards_dir = *mounts
        .get("./compose/grafana/dashboards")
        .expect("compose mounts compose/grafana/dashboards");
    assert!(
        repository_root()
            .join("compose/grafana/dashboards")
            .join(DASHBOARD.rsplit('/').next().unwrap())
            .is_file()
    );

    let providers = yaml(DASHBOARD_PROVIDERS);
    let providers = providers["providers"].as_array().expect("providers");
    assert_eq!(providers.len(), 1);
    assert_eq!(providers[0]["type"], "file");
    assert_eq!(
        providers[0]["options"]["path"].as_str(),
        Some(dashboards_dir),
        "{DASHBOARD_PROVIDERS} loads the directory compose mounts the dashboards at"
    );
    let environment = &grafana["environment"];
    let home = environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
        .as_str()
        .expect("a home dashboard");
    assert_eq!(home, format!("{dashboards_dir}/order-platform.json"));
    assert_eq!(environment["GF_AUTH_ANONYMOUS_ENABLED"], "true");
    assert_eq!(environment["GF_AUTH_ANONYMOUS_ORG_ROLE"], "Viewer");

    // The datasource is compose's Prometheus, under the uid the panels name.
    let datasources = yaml(DATASOURCES);
    let datasources = datasources["datasources"].as_array().expect("datasources");
    assert_eq!(datasources.len(), 1);
    let prometheus = &datasources[0];
    assert_eq!(prometheus["type"], "prometheus");
    assert_eq!(prometheus["url"], "http://prometheus:9090");
    let prometheus_service = &compose["services"]["prometheus"];
    assert!(
        prometheus_service["ports"]
            .as_array()
            .is_some_and(|ports| ports.contains(&"9090:9090".into())),
        "compose's prometheus listens on 9090"
    );
    let uid = prometheus["uid"].as_str().expect("a datasource uid");
    for panel in panels(&dashboard()) {
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], uid, "{}", panel["title"]);
        }
    }

    // The dashboard's job is the one compose/prometheus.yml scrapes the services as.
    let scrape = yaml("compose/prometheus.yml");
    let jobs: Vec<&str> = scrape["scrape_configs"]
        .as_array()
        .expect("scrape_configs")
        .iter()
        .map(|config| config["job_name"].as_str().unwrap())
        .collect();
    let dashboard = dashboard();
    let job = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|variable| variable["name"] == "job")
        .expect("a job variable");
    assert_eq!(jobs, [job["query"].as_str().unwrap()]);
    assert_eq!(job["current"]["value"], job["query"]);
}

// --- against a running platform -------------------------------------------------------

/// A family a service renders: its type and the label names of its series.
#[derive(Debug)]
struct Family {
    kind: String,
    labels: BTreeSet<String>,
    service: &'static str,
}

/// The families of one `/metrics` text (Prometheus text format 0.0.4).
fn families(text: &str, service: &'static str) -> BTreeMap<String, Family> {
    let mut families = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            families.insert(
                name.to_owned(),
                Family {
                    kind: kind.trim().to_owned(),
                    labels: BTreeSet::new(),
                    service,
                },
            );
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).expect("a sample: name value");
            let sample = &line[..end];
            let family = if families.contains_key(sample) {
                sample
            } else {
                histogram_family(sample)
            };
            let family = families
                .get_mut(family)
                .unwrap_or_else(|| panic!("{service}: sample {sample} without its # TYPE"));
            if line[end..].starts_with('{') {
                family.labels.extend(label_names(&line[end..]));
            }
        }
    }
    families
}

/// The label names of `{a="x",b="y"} 1` (values may hold `,`, `}` and escaped quotes).
fn label_names(labels: &str) -> Vec<String> {
    let chars: Vec<char> = labels.chars().collect();
    let mut names = Vec::new();
    let mut i = 1;
    while i < chars.len() && chars[i] != '}' {
        let start = i;
        while chars[i] != '=' {
            i += 1;
        }
        names.push(chars[start..i].iter().collect::<String>());
        i += 2; // `="`
        while chars[i] != '"' {
            if chars[i] == '\\' {
                i += 1;
            }
            i += 1;
        }
        i += 1;
        if chars[i] == ',' {
            i += 1;
        }
    }
    names
}

/// What is wrong with the dashboard's queries against `exported` (none: empty).
fn mismatches(queries: &[(String, String)], exported: &BTreeMap<String, Family>) -> Vec<String> {
    let mut problems = Vec::new();
    for (panel, expr) in queries {
        let names = parse_promql(expr).unwrap();
        let mut allowed: BTreeSet<String> = TARGET_LABELS
            .iter()
            .map(|label| (*label).to_owned())
            .collect();
        for metric in &names.metrics {
            if SCRAPE_SERIES.contains(&metric.as_str()) {
                continue;
            }
            let family = histogram_family(metric);
            match (exported.get(metric), exported.get(family)) {
                (Some(found), _) if found.kind == "histogram" => problems.push(format!(
                    "{panel:?}: {metric} is a histogram; query {metric}_bucket, _sum or _count"
                )),
                (Some(found), _) => allowed.extend(found.labels.iter().cloned()),
                (None, Some(found)) if found.kind == "histogram" && family != metric => {
                    allowed.extend(found.labels.iter().cloned());
                    if metric.ends_with("_bucket") {
                        allowed.insert("le".to_owned());
                    }
                }
                _ => problems.push(format!(
                    "{panel:?}: {metric} is exported by no service (in {expr})"
                )),
            }
        }
        for label in &names.labels {
            if !allowed.contains(label) {
                problems.push(format!(
                    "{panel:?}: label {label} is on none of {:?} (in {expr})",
                    names.metrics
                ));
            }
        }
    }
    problems
}

#[test]
fn dashboard_mismatches_name_a_family_or_label_no_service_exports() {
    let exported = families(
        "# HELP a_total A.\n# TYPE a_total counter\na_total{route=\"/orders/{id}\",status=\"2\\\"00\"} 1\n\
         # TYPE d_seconds histogram\nd_seconds_bucket{le=\"+Inf\"} 1\nd_seconds_sum 1\nd_seconds_count 1\n",
        "test",
    );
    assert_eq!(
        exported["a_total"].labels,
        ["route", "status"].map(str::to_owned).into()
    );
    let query = |expr: &str| vec![("p".to_owned(), expr.to_owned())];
    for good in [
        r#"sum by (route, instance) (rate(a_total{job="x",status="500"}[5m]))"#,
        "histogram_quantile(0.5, sum by (le) (rate(d_seconds_bucket[5m])))",
        "rate(d_seconds_sum[5m]) / rate(d_seconds_count[5m])",
        "up == 0",
    ] {
        assert_eq!(
            mismatches(&query(good), &exported),
            Vec::<String>::new(),
            "{good}"
        );
    }
    for bad in [
        "rate(b_total[5m])",
        "rate(a_total_bucket[5m])",
        "d_seconds",
        "sum by (path) (rate(a_total[5m]))",
        r#"rate(a_total{le="1"}[5m])"#,
    ] {
        assert!(
            !mismatches(&query(bad), &exported).is_empty(),
            "{bad} passed"
        );
    }
}

/// A local server answering every call as Stripe answers a PaymentIntent that
/// succeeded, so payments runs with `PAYMENTS_PROVIDER=stripe` and calls it.
fn payment_intents_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(10))).ok();
                // The head, then the form body its Content-Length announces.
                let mut request = Vec::new();
                let mut buffer = [0; 4096];
                let complete = |request: &[u8]| {
                    let text = String::from_utf8_lossy(request);
                    let Some((head, body)) = text.split_once("\r\n\r\n") else {
                        return false;
                    };
                    let length = head
                        .lines()
                        .find_map(|line| {
                            let (name, value) = line.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    body.len() >= length
                };
                while !complete(&request) {
                    match stream.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(read) => request.extend_from_slice(&buffer[..read]),
                    }
                }
                let body = format!(
                    r#"{{"id": "pi_dashboard_{n}", "object": "payment_intent", "status": "succeeded"}}"#
                );
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    format!("http://{addr}")
}

#[test]
fn dashboard_queries_name_only_families_the_running_platform_exports() {
    let stripe = payment_intents_server();
    let broker = format!("127.0.0.1:{}", free_port());
    let running = RunningStack::start(
        "dashboard",
        &["--broker-listen", &broker],
        vec![
            ("PAYMENTS_PROVIDER", "stripe".to_owned()),
            ("PAYMENTS_STRIPE_API_BASE", stripe),
            ("PAYMENTS_STRIPE_SECRET_KEY", "sk_test_dashboard".to_owned()),
        ],
    );
    let services: [(&'static str, &String); 4] = [
        ("gateway", &running.gateway),
        ("orders", &running.orders_health),
        ("payments", &running.payments_health),
        ("notifications", &running.notifications_health),
    ];

    // An order through the gateway, paid through the provider, notified.
    let (order_id, stored) = running.order_until_notified();
    assert_eq!(
        stored["order_status"], "succeeded",
        "paid through the PaymentIntents server"
    );

    // The queries against the four services' /metrics; a labelled family appears
    // with its first series (the lag within 2 s, orders' final status once it has
    // read the payment result), so they are read again until all match or time is up.
    let queries = queries(&dashboard());
    let deadline = Instant::now() + Duration::from_secs(30);
    let (problems, exported) = loop {
        let mut exported = BTreeMap::new();
        for (service, addr) in services {
            let (status, text) = http_request("GET", &format!("http://{addr}/metrics"), None)
                .unwrap_or_else(|| panic!("{service}'s /metrics answers"));
            assert_eq!(status, 200, "{service}'s /metrics");
            for (name, family) in families(&text, service) {
                if let Some(other) = exported.get(&name).map(|f: &Family| f.service) {
                    // orders and payments both relay (outbox_*), three services
                    // consume (kafka_consumer_lag): the same family, the same type.
                    assert_eq!(
                        exported[&name].kind, family.kind,
                        "{name} in {other} and {service}"
                    );
                }
                let entry = exported.entry(name).or_insert(Family {
                    kind: family.kind.clone(),
                    labels: BTreeSet::new(),
                    service,
                });
                entry.labels.extend(family.labels);
            }
        }
        let problems = mismatches(&queries, &exported);
        if problems.is_empty() || Instant::now() > deadline {
            break (problems, exported);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        problems.is_empty(),
        "the dashboard asks for what the services do not export:\n{}\n\nexported: {:#?}",
        problems.join("\n"),
        exported
            .iter()
            .map(|(name, family)| format!(
                "{name} ({}, {}) {:?}",
                family.kind, family.service, family.labels
            ))
            .collect::<Vec<_>>()
    );
    // The rarely moving counters were found at 0, not skipped.
    for family in [
        "payments_dead_letters_total",
        "notifications_dead_letters_total",
        "gateway_requests_shed_total",
        "orders_calls_shed_total",
        "payments_provider_calls_total",
    ] {
        assert!(exported.contains_key(family), "{family} read from /metrics");
    }

    running.stop(order_id);
}
