//! The sandbox platforms, served under `/sandbox` by the local stack (and by
//! the test suite as its fake platform):
//!
//! * `sandbox_oauth`: an OAuth 2.0 authorization server with a consent page,
//!   authorization codes bound to the redirect URI and a PKCE S256
//!   challenge, rotating refresh tokens (reusing an old one revokes the
//!   grant, as real platforms do), revocation, an identity endpoint and
//!   paged data streams.
//! * `sandbox_api_key`: magic API keys, one per outcome.
//! * `sandbox_oauth1`: an OAuth 1.0a (RFC 5849) server as X runs it:
//!   temporary credentials for a confirmed callback, a consent page, token
//!   credentials for the verifier, HMAC-SHA1 signatures checked on every
//!   request, tokens that do not expire, and `invalidate_token`.
//!
//! Control routes (`/sandbox/control/...`) let a person or a test revoke an
//! account's grants (`revoke?account=`) or a valid key (`revoke-key?key=`)
//! on the platform side.

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Datelike, Duration, Utc};
use http::{header, Method, Request, Response, StatusCode};
use serde_json::json;
use sha2::Digest;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use shared::ports::Clock;

pub const CLIENT_ID: &str = "sandbox-client";
pub const CLIENT_SECRET: &str = "sandbox-secret";
/// Records per stream per account when the sandbox starts (one an hour
/// from 2026-01-01); one more arrives every minute after that, so that a
/// person can watch the next scheduled sync pick it up.
pub const RECORDS_PER_STREAM: usize = 2500;
/// The most records the sandbox grows by (a week of minutes and more).
const MAX_NEW_RECORDS: i64 = 100_000;
const ACCESS_SECONDS: i64 = 3600;

struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    scopes: Vec<String>,
    account: String,
    expires_at: DateTime<Utc>,
}

struct Grant {
    account: String,
    scopes: Vec<String>,
    revoked: bool,
    refresh_token: String,
    retired_refresh_tokens: Vec<String>,
}

struct Access {
    grant: usize,
    expires_at: DateTime<Utc>,
}

/// OAuth 1.0a temporary credentials, until their token request.
struct Temporary {
    secret: String,
    callback: String,
    verifier: Option<String>,
    account: Option<String>,
}

/// OAuth 1.0a token credentials (they do not expire).
struct Token1 {
    secret: String,
    account: String,
    revoked: bool,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Code>,
    grants: Vec<Grant>,
    access: HashMap<String, Access>,
    token_requests: u64,
    temporary: HashMap<String, Temporary>,
    tokens1: HashMap<String, Token1>,
    /// Sub-accounts taken away from their account (`{account}-eu`, ...).
    dropped: std::collections::HashSet<String>,
    /// `sandbox-valid-` keys revoked by `/control/revoke-key`: rejected
    /// from then on, as a platform rejects a key its owner deleted.
    revoked_keys: std::collections::HashSet<String>,
}

/// The sandbox platforms' state (in memory: a restart is a new platform).
pub struct Sandbox {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    /// Its issuer identifier (`{public base}/sandbox`): published in its
    /// metadata and sent as `iss` with every authorization response.
    issuer: String,
    /// When it started: new records arrive a minute apart from then.
    started: DateTime<Utc>,
}

type Resp = Response<Bytes>;

fn json_resp(status: StatusCode, value: serde_json::Value) -> Resp {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Bytes::from(value.to_string()))
        .expect("valid response")
}

fn oauth_error(code: &str, description: &str) -> Resp {
    let status = if code == "invalid_client" { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
    json_resp(status, json!({"error": code, "error_description": description}))
}

fn redirect(location: &str) -> Resp {
    Response::builder()
        .status(StatusCode::FOUND)
        .header(header::LOCATION, location)
        .body(Bytes::new())
        .expect("valid response")
}

/// An account name a person may sign in as on the consent pages.
fn valid_account(account: &str) -> bool {
    !account.is_empty()
        && account.len() <= 40
        && account.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn form_resp(body: &str) -> Resp {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Bytes::from(body.to_owned()))
        .expect("valid response")
}

fn html(body: String) -> Resp {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action *")
        .body(Bytes::from(body))
        .expect("valid response")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn random_token(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn query(req: &Request<Bytes>) -> HashMap<String, String> {
    form(req.uri().query().unwrap_or("").as_bytes())
}

fn bearer(req: &Request<Bytes>) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// Client authentication: HTTP Basic, or body fields.
fn client_ok(req: &Request<Bytes>, f: &HashMap<String, String>) -> bool {
    let basic = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    match basic {
        Some(pair) => pair == format!("{CLIENT_ID}:{CLIENT_SECRET}"),
        None => {
            f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        }
    }
}

impl Sandbox {
    pub fn new(clock: Arc<dyn Clock>, issuer: impl Into<String>) -> Self {
        let started = clock.now();
        Self { state: Mutex::new(State::default()), clock, issuer: issuer.into(), started }
    }

    /// Its authorization server metadata (RFC 8414).
    pub fn metadata(&self) -> Resp {
        let i = &self.issuer;
        json_resp(
            StatusCode::OK,
            json!({
                "issuer": i,
                "authorization_endpoint": format!("{i}/oauth/authorize"),
                "token_endpoint": format!("{i}/oauth/token"),
                "revocation_endpoint": format!("{i}/oauth/revoke"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "authorization_response_iss_parameter_supported": true
            }),
        )
    }

    /// Revokes every grant of an account, as a user would on the platform.
    pub fn revoke_account(&self, account: &str) -> usize {
        let mut s = self.state.lock().expect("sandbox lock");
        let mut n = 0;
        for g in s.grants.iter_mut().filter(|g| g.account == account && !g.revoked) {
            g.revoked = true;
            n += 1;
        }
        for t in s.tokens1.values_mut().filter(|t| t.account == account && !t.revoked) {
            t.revoked = true;
            n += 1;
        }
        n
    }

    /// Daily spend of two campaigns, `since` to `until` (days up to today),
    /// `limit` rows a page (`page` from 1). The last three days are restated
    /// as they age (conversions arriving late), as ad platforms do.
    fn daily_spend(&self, req: &Request<Bytes>, account: &str) -> Resp {
        let q = query(req);
        let day = |k: &str| q.get(k).and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let (Some(since), Some(until)) = (day("since"), day("until")) else {
            return json_resp(StatusCode::BAD_REQUEST, json!({"error": "since and until (YYYY-MM-DD) are required"}));
        };
        let today = self.clock.now().date_naive();
        let mut rows = Vec::new();
        let mut d = since;
        while d <= until.min(today) {
            let late = (today - d).num_days().clamp(0, 3);
            for (n, (id, name)) in [("cmp_brand", "Brand"), ("cmp_promo", "Promo")].iter().enumerate() {
                let base = 1000 + (d.ordinal() as i64 * 37 + n as i64 * 11) % 500;
                // Cents: restated days gain conversions and value as they age.
                let conversions = 2 + late;
                rows.push(json!({
                    "date": d.format("%Y-%m-%d").to_string(), "account": account, "campaign_id": id, "campaign_name": name,
                    "spend": format!("{}.{:02}", base / 100, base % 100), "currency": "EUR",
                    "impressions": 1000 + base, "clicks": 20 + base % 30,
                    "conversions": conversions, "conversion_value": format!("{}.00", conversions * 25),
                }));
            }
            d = d.succ_opt().expect("a next day");
        }
        let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(1000).clamp(1, 1000);
        let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
        let rows: Vec<_> = rows.into_iter().skip((page - 1) * limit).take(limit).collect();
        json_resp(StatusCode::OK, json!({"data": rows}))
    }

    /// Takes a sub-account away from what an account reaches (as a manager
    /// losing access to a client's ad account).
    /// Grants of an account the sandbox still honours (neither revoked by
    /// a revocation request nor by a control).
    pub fn live_grants(&self, account: &str) -> usize {
        let s = self.state.lock().expect("sandbox lock");
        s.grants.iter().filter(|g| g.account == account && !g.revoked).count()
    }

    pub fn drop_sub_account(&self, id: &str) {
        self.state.lock().expect("sandbox lock").dropped.insert(id.to_owned());
    }

    /// What an account reaches: a main and an EU sub-account.
    fn sub_accounts(&self, account: &str) -> Resp {
        let s = self.state.lock().expect("sandbox lock");
        let data: Vec<_> = [("main", "main"), ("eu", "EU")]
            .iter()
            .map(|(suffix, label)| (format!("{account}-{suffix}"), format!("{account} {label}")))
            .filter(|(id, _)| !s.dropped.contains(id))
            .map(|(id, name)| json!({"id": id, "name": name, "currency": "EUR", "time_zone": "Europe/Berlin"}))
            .collect();
        json_resp(StatusCode::OK, json!({"data": data}))
    }

    /// How many token requests were made (tests of single-flight refresh).
    pub fn token_requests(&self) -> u64 {
        self.state.lock().expect("sandbox lock").token_requests
    }

    /// Serves a request whose path starts with `/sandbox`.
    pub fn handle(&self, req: &Request<Bytes>) -> Resp {
        let path = req.uri().path().trim_start_matches("/sandbox");
        match (req.method(), path) {
            (&Method::GET, "/oauth/authorize") => self.authorize(req),
            (&Method::GET, "/.well-known/openid-configuration") => self.metadata(),
            (&Method::POST, "/oauth/decision") => self.decision(&form(req.body())),
            (&Method::POST, "/oauth/token") => self.token(req),
            (&Method::POST, "/oauth/revoke") => self.revoke(req),
            (&Method::POST, "/control/revoke") => {
                let q = query(req);
                let account = q.get("account").map(String::as_str).unwrap_or("acct_demo");
                json_resp(StatusCode::OK, json!({"revoked": self.revoke_account(account)}))
            }
            (&Method::GET, "/api/me") => match self.account_of(req) {
                Ok(account) => {
                    json_resp(StatusCode::OK, json!({"id": account, "name": format!("Sandbox account {account}")}))
                }
                Err(r) => *r,
            },
            (&Method::POST, "/control/revoke-key") => {
                let key = query(req).get("key").cloned().unwrap_or_default();
                let revoked = self.state.lock().expect("sandbox lock").revoked_keys.insert(key);
                json_resp(StatusCode::OK, json!({"revoked": revoked}))
            }
            (&Method::GET, "/api/key") if self.key_revoked(req) => {
                json_resp(StatusCode::UNAUTHORIZED, json!({"error": "invalid_key"}))
            }
            (&Method::GET, "/api/key") => Self::key_info(req),
            (&Method::GET, "/api/reports/spend") => match self.account_of(req) {
                Ok(account) => self.daily_spend(req, &account),
                Err(r) => *r,
            },
            (&Method::GET, "/api/accounts") => match self.account_of(req) {
                Ok(account) => self.sub_accounts(&account),
                Err(r) => *r,
            },
            (&Method::POST, "/oauth1/request_token") => self.request_token(req),
            (&Method::GET, "/oauth1/authorize") => self.authorize1(req),
            (&Method::POST, "/oauth1/decision") => self.decision1(&form(req.body())),
            (&Method::POST, "/oauth1/access_token") => self.access_token(req),
            (&Method::POST, "/oauth1/invalidate_token") => self.invalidate1(req),
            (&Method::GET, "/oauth1/api/me") => match self.account_of(req) {
                Ok(account) => json_resp(StatusCode::OK, json!({"id": account, "name": format!("Sandbox {account}")})),
                Err(r) => *r,
            },
            (&Method::GET, p) if p.starts_with("/oauth1/api/") => self.stream(req, &p[12..]),
            (&Method::GET, p) if p.starts_with("/api/") => self.stream(req, &p[5..]),
            _ => json_resp(StatusCode::NOT_FOUND, json!({"error": "not_found"})),
        }
    }

    fn authorize(&self, req: &Request<Bytes>) -> Resp {
        let q = query(req);
        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
        if get("client_id") != CLIENT_ID {
            return html(
                "<h1>Unknown client</h1><p>This sandbox only knows client <code>sandbox-client</code>.</p>".into(),
            );
        }
        let redirect_uri = get("redirect_uri");
        if url::Url::parse(&redirect_uri).is_err() || get("response_type") != "code" {
            return html("<h1>Invalid request</h1><p>redirect_uri and response_type=code are required.</p>".into());
        }
        if q.contains_key("code_challenge") && get("code_challenge_method") != "S256" {
            return html("<h1>Invalid request</h1><p>Only PKCE S256 is accepted.</p>".into());
        }
        // Tests and scripts may approve without the page.
        if let Some(account) = q.get("auto_approve") {
            let mut f = q.clone();
            f.insert("decision".into(), "approve".into());
            f.insert("account".into(), account.clone());
            return self.decision(&f);
        }
        let hidden: String = ["client_id", "redirect_uri", "state", "scope", "code_challenge", "code_challenge_method"]
            .iter()
            .map(|k| format!(r#"<input type="hidden" name="{k}" value="{}">"#, escape(&get(k))))
            .collect();
        html(format!(
            r#"<!doctype html><html><head><meta charset="utf-8"><title>Sandbox platform: authorize</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}button{{font-size:1rem;padding:.5rem 1rem;margin-right:.5rem}}</style></head>
<body><h1>Sandbox platform</h1><p><strong>Connections service</strong> asks for: <code>{scopes}</code></p>
<form method="post" action="/sandbox/oauth/decision">{hidden}
<label>Sign in as account <input name="account" id="account" value="acct_demo" pattern="[A-Za-z0-9_-]{{1,40}}"></label>
<p><button name="decision" value="approve" id="approve">Approve</button><button name="decision" value="deny" id="deny">Deny</button></p></form></body></html>"#,
            scopes = escape(&get("scope")),
        ))
    }

    fn decision(&self, f: &HashMap<String, String>) -> Resp {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let Ok(mut target) = url::Url::parse(&get("redirect_uri")) else {
            return json_resp(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
        };
        if get("decision") != "approve" {
            target
                .query_pairs_mut()
                .append_pair("error", "access_denied")
                .append_pair("state", &get("state"))
                .append_pair("iss", &self.issuer);
            return redirect(target.as_str());
        }
        let account = get("account");
        if !valid_account(&account) {
            return json_resp(StatusCode::BAD_REQUEST, json!({"error": "invalid_account"}));
        }
        let code = random_token("code");
        self.state.lock().expect("sandbox lock").codes.insert(
            code.clone(),
            Code {
                client_id: get("client_id"),
                redirect_uri: get("redirect_uri"),
                challenge: f.get("code_challenge").filter(|c| !c.is_empty()).cloned(),
                scopes: get("scope").split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
                account,
                expires_at: self.clock.now() + Duration::minutes(5),
            },
        );
        target
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &get("state"))
            .append_pair("iss", &self.issuer);
        redirect(target.as_str())
    }

    fn issue(&self, s: &mut State, grant: usize, scopes: &[String]) -> Resp {
        let access = random_token("at");
        let expires_at = self.clock.now() + Duration::seconds(ACCESS_SECONDS);
        s.access.insert(access.clone(), Access { grant, expires_at });
        let refresh = s.grants[grant].refresh_token.clone();
        json_resp(
            StatusCode::OK,
            json!({"access_token": access, "token_type": "bearer", "expires_in": ACCESS_SECONDS,
                   "refresh_token": refresh, "scope": scopes.join(" ")}),
        )
    }

    fn token(&self, req: &Request<Bytes>) -> Resp {
        let f = form(req.body());
        if !client_ok(req, &f) {
            return oauth_error("invalid_client", "client authentication failed");
        }
        let mut s = self.state.lock().expect("sandbox lock");
        s.token_requests += 1;
        let now = self.clock.now();
        match f.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let Some(code) = f.get("code").and_then(|c| s.codes.remove(c)) else {
                    return oauth_error("invalid_grant", "unknown or used code");
                };
                if code.expires_at < now || code.client_id != CLIENT_ID {
                    return oauth_error("invalid_grant", "expired code");
                }
                if f.get("redirect_uri") != Some(&code.redirect_uri) {
                    return oauth_error("invalid_grant", "redirect_uri does not match");
                }
                if let Some(challenge) = &code.challenge {
                    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
                    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .encode(sha2::Sha256::digest(verifier.as_bytes()));
                    if &computed != challenge {
                        return oauth_error("invalid_grant", "PKCE verification failed");
                    }
                }
                s.grants.push(Grant {
                    account: code.account,
                    scopes: code.scopes.clone(),
                    revoked: false,
                    refresh_token: random_token("rt"),
                    retired_refresh_tokens: vec![],
                });
                let grant = s.grants.len() - 1;
                self.issue(&mut s, grant, &code.scopes)
            }
            Some("refresh_token") => {
                let given = f.get("refresh_token").cloned().unwrap_or_default();
                if let Some(g) = s.grants.iter_mut().find(|g| g.retired_refresh_tokens.contains(&given)) {
                    // Reuse of a rotated refresh token: the whole grant dies.
                    g.revoked = true;
                    return oauth_error("invalid_grant", "refresh token reused; grant revoked");
                }
                let Some(grant) = s.grants.iter().position(|g| g.refresh_token == given && !g.revoked) else {
                    return oauth_error("invalid_grant", "unknown or revoked refresh token");
                };
                let g = &mut s.grants[grant];
                let old = std::mem::replace(&mut g.refresh_token, random_token("rt"));
                g.retired_refresh_tokens.push(old);
                let scopes = g.scopes.clone();
                self.issue(&mut s, grant, &scopes)
            }
            _ => oauth_error("unsupported_grant_type", "use authorization_code or refresh_token"),
        }
    }

    fn revoke(&self, req: &Request<Bytes>) -> Resp {
        let f = form(req.body());
        if !client_ok(req, &f) {
            return oauth_error("invalid_client", "client authentication failed");
        }
        let token = f.get("token").cloned().unwrap_or_default();
        let mut s = self.state.lock().expect("sandbox lock");
        let grant =
            s.access.get(&token).map(|a| a.grant).or_else(|| s.grants.iter().position(|g| g.refresh_token == token));
        if let Some(g) = grant {
            s.grants[g].revoked = true;
        }
        Response::builder().status(StatusCode::OK).body(Bytes::new()).expect("valid response")
    }

    /// The account behind a bearer access token or API key, or the error
    /// response the platform gives.
    fn account_of(&self, req: &Request<Bytes>) -> Result<String, Box<Resp>> {
        let unauthorized =
            |why: &str| Box::new(json_resp(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized", "message": why})));
        // OAuth 1.0a: a signature with token credentials.
        if let Some(p) = self.signed(req) {
            let s = self.state.lock().expect("sandbox lock");
            let token =
                p.get("oauth_token").and_then(|t| s.tokens1.get(t)).ok_or_else(|| unauthorized("invalid token"))?;
            if token.revoked {
                return Err(unauthorized("token revoked"));
            }
            return Ok(token.account.clone());
        }
        let token = bearer(req).ok_or_else(|| unauthorized("missing bearer token"))?;
        if token.starts_with("sandbox-") {
            return match token.starts_with("sandbox-valid-") {
                true if self.key_revoked(req) => Err(unauthorized("invalid key")),
                true => Ok("acct_key".into()),
                false => Err(Box::new(Self::key_info(req))),
            };
        }
        let s = self.state.lock().expect("sandbox lock");
        let access = s.access.get(token).ok_or_else(|| unauthorized("invalid token"))?;
        if access.expires_at <= self.clock.now() {
            return Err(unauthorized("token expired"));
        }
        let grant = &s.grants[access.grant];
        if grant.revoked {
            return Err(unauthorized("token revoked"));
        }
        Ok(grant.account.clone())
    }

    /// The protocol parameters of a request whose OAuth 1.0a signature
    /// holds (consumer `sandbox-client`, and the temporary or token
    /// credentials it names), recomputed as RFC 5849 says.
    fn signed(&self, req: &Request<Bytes>) -> Option<std::collections::BTreeMap<String, String>> {
        let header = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let origin = self.issuer.trim_end_matches("/sandbox");
        let url = url::Url::parse(&format!("{origin}{}", req.uri())).ok()?;
        let s = self.state.lock().expect("sandbox lock");
        let secret_of = |t: &str| {
            s.temporary.get(t).map(|x| x.secret.clone()).or_else(|| s.tokens1.get(t).map(|x| x.secret.clone()))
        };
        shared::platform::oauth1::verify(req.method().as_str(), &url, header, (CLIENT_ID, CLIENT_SECRET), secret_of)
    }

    fn request_token(&self, req: &Request<Bytes>) -> Resp {
        let Some(p) = self.signed(req) else {
            return json_resp(
                StatusCode::UNAUTHORIZED,
                json!({"errors": [{"code": 32, "message": "Could not authenticate you."}]}),
            );
        };
        let Some(callback) = p.get("oauth_callback").filter(|c| url::Url::parse(c).is_ok()) else {
            return json_resp(
                StatusCode::BAD_REQUEST,
                json!({"errors": [{"code": 417, "message": "Callback URL not approved."}]}),
            );
        };
        let (token, secret) = (random_token("tmp"), random_token("tmpsecret"));
        let temp = Temporary { secret: secret.clone(), callback: callback.clone(), verifier: None, account: None };
        self.state.lock().expect("sandbox lock").temporary.insert(token.clone(), temp);
        form_resp(&format!("oauth_token={token}&oauth_token_secret={secret}&oauth_callback_confirmed=true"))
    }

    fn authorize1(&self, req: &Request<Bytes>) -> Resp {
        let q = query(req);
        let token = q.get("oauth_token").cloned().unwrap_or_default();
        if !self.state.lock().expect("sandbox lock").temporary.contains_key(&token) {
            return html("<h1>Invalid request</h1><p>Unknown or used oauth_token.</p>".into());
        }
        if let Some(account) = q.get("auto_approve") {
            let f = HashMap::from([
                ("oauth_token".to_owned(), token),
                ("decision".to_owned(), "approve".to_owned()),
                ("account".to_owned(), account.clone()),
            ]);
            return self.decision1(&f);
        }
        html(format!(
            r#"<!doctype html><html><head><meta charset="utf-8"><title>Sandbox platform (OAuth 1.0a): authorize</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}button{{font-size:1rem;padding:.5rem 1rem;margin-right:.5rem}}</style></head>
<body><h1>Sandbox platform (OAuth 1.0a)</h1><p><strong>Connections service</strong> asks to use your account.</p>
<form method="post" action="/sandbox/oauth1/decision"><input type="hidden" name="oauth_token" value="{token}">
<label>Sign in as account <input name="account" id="account" value="acct_demo" pattern="[A-Za-z0-9_-]{{1,40}}"></label>
<p><button name="decision" value="approve" id="approve">Authorize app</button><button name="decision" value="deny" id="deny">Cancel</button></p></form></body></html>"#,
            token = escape(&token),
        ))
    }

    fn decision1(&self, f: &HashMap<String, String>) -> Resp {
        let get = |k: &str| f.get(k).cloned().unwrap_or_default();
        let token = get("oauth_token");
        let mut s = self.state.lock().expect("sandbox lock");
        let Some(temp) = s.temporary.get_mut(&token) else {
            return json_resp(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
        };
        let Ok(mut target) = url::Url::parse(&temp.callback) else {
            return json_resp(StatusCode::BAD_REQUEST, json!({"error": "invalid_request"}));
        };
        if get("decision") != "approve" {
            target.query_pairs_mut().append_pair("denied", &token);
            return redirect(target.as_str());
        }
        let account = get("account");
        if !valid_account(&account) {
            return json_resp(StatusCode::BAD_REQUEST, json!({"error": "invalid_account"}));
        }
        let verifier = random_token("v");
        temp.verifier = Some(verifier.clone());
        temp.account = Some(account);
        target.query_pairs_mut().append_pair("oauth_token", &token).append_pair("oauth_verifier", &verifier);
        redirect(target.as_str())
    }

    fn access_token(&self, req: &Request<Bytes>) -> Resp {
        let refused = || {
            json_resp(
                StatusCode::UNAUTHORIZED,
                json!({"errors": [{"code": 89, "message": "Invalid or expired token."}]}),
            )
        };
        let Some(p) = self.signed(req) else { return refused() };
        let mut s = self.state.lock().expect("sandbox lock");
        s.token_requests += 1;
        let Some(token) = p.get("oauth_token") else { return refused() };
        // Temporary credentials buy token credentials once, with their verifier.
        let Some(temp) = s.temporary.remove(token) else { return refused() };
        if temp.verifier.is_none() || temp.verifier.as_ref() != p.get("oauth_verifier") {
            return refused();
        }
        let account = temp.account.unwrap_or_default();
        let (access, secret) = (random_token("at1"), random_token("at1secret"));
        s.tokens1.insert(access.clone(), Token1 { secret: secret.clone(), account: account.clone(), revoked: false });
        form_resp(&format!("oauth_token={access}&oauth_token_secret={secret}&user_id={account}&screen_name={account}"))
    }

    fn invalidate1(&self, req: &Request<Bytes>) -> Resp {
        let Some(p) = self.signed(req) else {
            return json_resp(
                StatusCode::UNAUTHORIZED,
                json!({"errors": [{"code": 89, "message": "Invalid or expired token."}]}),
            );
        };
        let mut s = self.state.lock().expect("sandbox lock");
        match p.get("oauth_token").and_then(|t| s.tokens1.get_mut(t)) {
            Some(t) => {
                t.revoked = true;
                json_resp(StatusCode::OK, json!({"access_token": p["oauth_token"]}))
            }
            None => json_resp(
                StatusCode::UNAUTHORIZED,
                json!({"errors": [{"code": 89, "message": "Invalid or expired token."}]}),
            ),
        }
    }

    /// The magic keys of the sandbox API-key platform, by prefix (like
    /// payment test cards): `sandbox-valid-`, `sandbox-invalid-`,
    /// `sandbox-scope-`, `sandbox-expired-`, `sandbox-down-`,
    /// `sandbox-ratelimit-`. Anything else is an unknown key.
    fn key_revoked(&self, req: &Request<Bytes>) -> bool {
        bearer(req).is_some_and(|key| self.state.lock().expect("sandbox lock").revoked_keys.contains(key))
    }

    fn key_info(req: &Request<Bytes>) -> Resp {
        let key = bearer(req).unwrap_or("");
        let kind = key.strip_prefix("sandbox-").and_then(|rest| rest.split_once('-')).map(|(kind, _)| kind);
        match kind {
            Some("valid") => json_resp(
                StatusCode::OK,
                json!({"account": {"id": "acct_key", "name": "Sandbox key account"}, "scopes": ["read", "write"]}),
            ),
            Some("scope") => json_resp(StatusCode::FORBIDDEN, json!({"error": "insufficient_scope", "scopes": []})),
            Some("expired") => json_resp(StatusCode::UNAUTHORIZED, json!({"error": "key_expired"})),
            Some("down") => json_resp(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "maintenance"})),
            Some("ratelimit") => Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header(header::RETRY_AFTER, "7")
                .body(Bytes::from_static(b"{\"error\":\"rate_limited\"}"))
                .expect("valid response"),
            _ => json_resp(StatusCode::UNAUTHORIZED, json!({"error": "invalid_key"})),
        }
    }

    /// Deterministic records, paged by an opaque cursor (`cursor`) or a
    /// page number (`page`).
    fn stream(&self, req: &Request<Bytes>, stream: &str) -> Resp {
        if !["orders", "customers"].contains(&stream) {
            return json_resp(StatusCode::NOT_FOUND, json!({"error": "no such stream"}));
        }
        let account = match self.account_of(req) {
            Ok(a) => a,
            Err(r) => return *r,
        };
        let q = query(req);
        let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100).clamp(1, 250);
        let start: usize = if let Some(page) = q.get("page") {
            page.parse::<usize>().unwrap_or(1).saturating_sub(1) * limit
        } else {
            q.get("cursor").and_then(|c| c.strip_prefix("c").and_then(|n| n.parse().ok())).unwrap_or(0)
        };
        let base = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("valid date").with_timezone(&Utc);
        // The first records an hour apart from `base`, then one a minute
        // after the sandbox started.
        let minutes_up = (self.clock.now() - self.started).num_minutes().clamp(0, MAX_NEW_RECORDS);
        let available = RECORDS_PER_STREAM + minutes_up as usize;
        let updated_at = |i: usize| {
            if i < RECORDS_PER_STREAM {
                base + Duration::hours(i as i64)
            } else {
                self.started + Duration::minutes((i - RECORDS_PER_STREAM + 1) as i64)
            }
        };
        // Incremental: only records updated after `updated_since`.
        let first = q
            .get("updated_since")
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|since| {
                let since = since.with_timezone(&Utc);
                let old = ((since - base).num_hours() + 1).clamp(0, RECORDS_PER_STREAM as i64) as usize;
                let new = (since - self.started).num_minutes().clamp(0, minutes_up) as usize;
                if old < RECORDS_PER_STREAM {
                    old
                } else {
                    RECORDS_PER_STREAM + new
                }
            })
            .unwrap_or(0);
        let start = start + first;
        let end = (start + limit).min(available);
        let data: Vec<_> = (start..end)
            .map(|i| {
                json!({"id": format!("{account}-{stream}-{i:05}"), "amount": format!("{}.{:02}", 10 + i % 90, i % 100),
                       "updated_at": updated_at(i).to_rfc3339()})
            })
            .collect();
        let next = (end < available).then(|| format!("c{}", end - first));
        json_resp(StatusCode::OK, json!({"data": data, "next": next, "total": available - first}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::adapters::clock::ManualClock;

    fn page(sandbox: &Sandbox, query: &str) -> serde_json::Value {
        let req = Request::get(format!("/sandbox/api/orders?limit=250{query}"))
            .header(header::AUTHORIZATION, "Bearer sandbox-valid-demo")
            .body(Bytes::new())
            .unwrap();
        serde_json::from_slice(sandbox.handle(&req).body()).unwrap()
    }

    #[test]
    fn new_records_arrive_a_minute_apart_and_an_incremental_read_finds_only_them() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let sandbox = Sandbox::new(clock.clone(), "http://127.0.0.1/sandbox");
        assert_eq!(page(&sandbox, "")["total"], RECORDS_PER_STREAM);
        let last_old = (DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap()
            + Duration::hours(RECORDS_PER_STREAM as i64 - 1))
        .to_rfc3339();
        let since = |s: &str| format!("&updated_since={}", s.replace('+', "%2B"));
        assert_eq!(page(&sandbox, &since(&last_old))["total"], 0, "nothing new yet");
        clock.advance(Duration::minutes(3));
        assert_eq!(page(&sandbox, "")["total"], RECORDS_PER_STREAM + 3);
        let new = page(&sandbox, &since(&last_old));
        assert_eq!(new["total"], 3);
        let newest = new["data"][2]["updated_at"].as_str().unwrap().to_owned();
        assert_eq!(new["data"][2]["id"], format!("acct_key-orders-{:05}", RECORDS_PER_STREAM + 2));
        assert_eq!(page(&sandbox, &since(new["data"][0]["updated_at"].as_str().unwrap()))["total"], 2);
        clock.advance(Duration::minutes(1));
        let next = page(&sandbox, &since(&newest));
        assert_eq!((next["total"].as_u64(), next["data"].as_array().unwrap().len()), (Some(1), 1));
    }
}
