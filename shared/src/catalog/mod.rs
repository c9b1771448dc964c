//! The platform catalog: data, not code. The built-in entries are
//! `platforms.json` (compiled in); a deployment adds, overrides or removes
//! entries with `CATALOG_OVERRIDES` (a JSON file path or inline JSON) without
//! a rebuild. Each override is a JSON merge patch (RFC 7396) over the entry
//! of that id, or a whole new entry; `null` removes an entry.
//!
//! String values may use `{public_base_url}` (the deployment's public API
//! base); connect-time params such as `{shop}` stay for the OAuth flow.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::domain::error::Error;
use crate::domain::ids::PlatformId;
use crate::domain::ConnectionRole;

const BUILT_IN: &str = include_str!("platforms.json");

/// The catalog ids of the real platforms, which frontends rely on.
pub const PLATFORM_IDS: [&str; 17] = [
    "shopify",
    "bigcommerce",
    "woocommerce",
    "amazon_seller",
    "google_ads",
    "google_analytics",
    "meta_ads",
    "tiktok_ads",
    "pinterest_ads",
    "microsoft_ads",
    "amazon_ads",
    "stripe",
    "x_ads",
    "snapchat_ads",
    "klaviyo",
    "recharge",
    "custom_costs",
];

/// The catalog ids of the sandbox platforms.
pub const SANDBOX_IDS: [&str; 2] = ["sandbox_oauth", "sandbox_api_key"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Oauth2,
    Oauth1,
    ApiKey,
    FileUpload,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Oauth2 => "oauth2",
            AuthMethod::Oauth1 => "oauth1",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::FileUpload => "file_upload",
        }
    }
}

/// Whose OAuth app is used: the deployment's own (pre-configured) or one the
/// workspace brings (client id and secret stored in the vault).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSource {
    #[default]
    Preconfigured,
    Byo,
}

/// A connect-time parameter (shop domain, store URL, region).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    pub name: String,
    pub label: String,
    /// A regular expression the whole value must match.
    pub pattern: String,
    pub example: Option<String>,
    pub help: Option<String>,
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with client id and secret.
    Basic,
    /// Form body fields.
    #[default]
    Body,
    /// A JSON body (TikTok).
    JsonBody,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshKind {
    /// Each refresh returns a new refresh token that replaces the old one.
    Rotating,
    /// The refresh token stays the same.
    NonRotating,
    /// Tokens cannot be refreshed (they may still expire).
    None,
    /// A short-lived token is exchanged for a long-lived one that cannot be
    /// refreshed (Meta).
    LongLivedExchange,
}

impl RefreshKind {
    /// Whether a refresh token renews the grant (the sweep refreshes ahead
    /// of expiry, a 401 refreshes once); otherwise the grant is probed and
    /// ends with its token.
    pub fn is_refreshable(self) -> bool {
        matches!(self, RefreshKind::Rotating | RefreshKind::NonRotating)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshPolicy {
    pub kind: RefreshKind,
    /// Refresh tokens that die after this many days (Shopify 90).
    pub refresh_token_days: Option<u32>,
    /// Refresh tokens that die after this many days unused (Google 180, Microsoft 90).
    pub idle_expiry_days: Option<u32>,
    /// The platform wants a new consent after this many days (Amazon Seller 365).
    pub reauthorize_days: Option<u32>,
    /// Lifetime of the long-lived token of an exchange (Meta ~60 days).
    pub long_lived_seconds: Option<u64>,
}

/// The OAuth side of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSpec {
    /// The endpoints; may be left out when `issuer` is given: they are then
    /// read from the issuer's published metadata (RFC 8414 / OpenID
    /// Connect discovery).
    #[serde(default)]
    pub authorize_url: String,
    #[serde(default)]
    pub token_url: String,
    /// The authorization server's issuer identifier. The callback refuses
    /// an `iss` that differs (RFC 9207: mix-up defence).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The server sends `iss` with every authorization response
    /// (`authorization_response_iss_parameter_supported`): a missing one is
    /// refused too.
    #[serde(default)]
    pub iss_parameter: bool,
    pub revoke_url: Option<String>,
    /// OAuth 1.0a only: the request-token endpoint.
    pub request_token_url: Option<String>,
    #[serde(default)]
    pub default_scopes: Vec<String>,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    #[serde(default = "space")]
    pub scope_separator: String,
    /// PKCE S256 (never `plain`).
    pub pkce: bool,
    #[serde(default)]
    pub extra_authorize_params: BTreeMap<String, String>,
    /// Further fields of the token request; values may use the flow's
    /// parameters (`{context}`, `{scope}` from BigCommerce's callback).
    #[serde(default)]
    pub extra_token_params: BTreeMap<String, String>,
    /// Send the scopes with a refresh (Microsoft identity platform).
    #[serde(default)]
    pub scope_on_refresh: bool,
    /// The fields of a revocation, as templates: `{token}` (the refresh
    /// token, else the access token), `{client_id}`, `{account_id}` (the
    /// grant's account) and the flow's parameters. Default: RFC 7009's
    /// `token`. Stripe: `client_id` and `stripe_user_id`.
    #[serde(default)]
    pub revoke_fields: Option<BTreeMap<String, String>>,
    /// The revocation authenticates with the client secret as a bearer token
    /// (Stripe: the platform's secret key), not as the token endpoint does.
    #[serde(default)]
    pub revoke_bearer_secret: bool,
    /// The authorize URL's client id is another value of the app
    /// credentials than the token endpoint's (SP-API: the app's
    /// `application_id`, while LWA takes the `client_id`).
    #[serde(default)]
    pub authorize_client_id_field: Option<String>,
    #[serde(default)]
    pub client_auth: ClientAuth,
    #[serde(default = "client_id")]
    pub client_id_param: String,
    #[serde(default = "client_secret")]
    pub client_secret_param: String,
    /// The callback query parameter that carries the code.
    #[serde(default = "code")]
    pub code_param: String,
    /// Further callback parameters to keep (`selling_partner_id`, `context`).
    #[serde(default)]
    pub callback_params: Vec<String>,
    /// Patterns the values of callback parameters must match whole (they
    /// reach URL templates: BigCommerce's `context` is `stores/{hash}`).
    #[serde(default)]
    pub callback_param_patterns: BTreeMap<String, String>,
    /// The platform may start an install itself (BigCommerce's control
    /// panel): a callback with no state but every `callback_params` is an
    /// install, claimed later by a workspace. Deployment apps only.
    #[serde(default)]
    pub install_without_state: bool,
    /// Who may show the install page in a frame (the platform's control panel).
    #[serde(default)]
    pub install_frame_ancestors: Vec<String>,
    /// JSON pointer to the token object in the token response, if nested.
    pub token_pointer: Option<String>,
    /// Verify the HMAC of the callback query (Shopify).
    #[serde(default)]
    pub callback_hmac: bool,
    /// Access-token lifetime when the response has no `expires_in`.
    pub token_lifetime_seconds: Option<u64>,
    /// How often to probe the grant with the identity request (default daily).
    pub probe_minutes: Option<u32>,
    pub refresh: RefreshPolicy,
}

fn space() -> String {
    " ".into()
}
fn client_id() -> String {
    "client_id".into()
}
fn client_secret() -> String {
    "client_secret".into()
}
fn code() -> String {
    "code".into()
}

/// How data calls authenticate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSpec {
    pub base_url: String,
    /// Header name and value template: `{access_token}`, `{api_key}`, or a
    /// key field name.
    pub auth_header: Option<(String, String)>,
    /// HTTP Basic from two key fields (WooCommerce).
    pub basic_auth: Option<(String, String)>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Errors the platform answers in the body, whatever the HTTP status.
    #[serde(default)]
    pub error_envelope: Option<ErrorEnvelope>,
    /// A 403 may mean an expired token (SP-API): refresh once, then judge.
    #[serde(default)]
    pub refresh_on_forbidden: bool,
    /// A header with the requests per second the platform allows
    /// (`x-amzn-RateLimit-Limit`): requests of a connection are paced by it.
    #[serde(default)]
    pub rate_limit_header: Option<String>,
    /// A query-cost budget the platform reports in its answers (Shopify
    /// GraphQL's `extensions.cost`): requests wait until it covers the next.
    #[serde(default)]
    pub query_cost: Option<QueryCost>,
}

/// Where an answer reports the cost budget of a GraphQL API (Shopify:
/// `extensions.cost.requestedQueryCost` and `throttleStatus`), so the engine
/// waits exactly until the budget covers the next query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryCost {
    pub requested_pointer: String,
    pub available_pointer: String,
    pub restore_rate_pointer: String,
}

/// An error code as a platform writes it: a number (TikTok 40100) or text
/// (Shopify `THROTTLED`); compared as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Code {
    Number(i64),
    Text(String),
}

impl Code {
    pub fn text(&self) -> String {
        match self {
            Code::Number(n) => n.to_string(),
            Code::Text(t) => t.clone(),
        }
    }
}

/// Where a platform puts its error code, and what the codes mean (TikTok:
/// HTTP 200 with `code` ≠ 0; Meta: `error.code` 190 for a revoked token;
/// Shopify GraphQL: 200 with `errors[0].extensions.code`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorEnvelope {
    /// JSON pointer to the code.
    pub code_pointer: String,
    /// Codes that mean success (TikTok: 0); any other present code is an error.
    #[serde(default)]
    pub ok_codes: Vec<Code>,
    /// The grant is revoked or expired.
    #[serde(default)]
    pub revoked_codes: Vec<Code>,
    /// Slow down.
    #[serde(default)]
    pub throttled_codes: Vec<Code>,
    /// The grant lacks a permission (Shopify `ACCESS_DENIED`): a person must act.
    #[serde(default)]
    pub denied_codes: Vec<Code>,
}

/// The request that lists what a grant reaches, and where each sub-account's
/// id and name are (pointers relative to a list item; an empty `id_pointer`:
/// the item is the id, as Google Ads' resource names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoverySpec {
    /// Relative to the API base URL, or absolute.
    pub path: String,
    /// The list ("" for a top-level array; `*` for every element of an
    /// array on the way: Snapchat's organizations' ad accounts).
    pub list_pointer: String,
    pub id_pointer: String,
    #[serde(default)]
    pub name_pointer: Option<String>,
    /// Query parameters from the app credentials (TikTok's app id and secret).
    #[serde(default)]
    pub credential_query: BTreeMap<String, String>,
    /// A SOAP call instead of a GET (Microsoft's `SearchAccounts`); its
    /// answer's repeated elements are read as lists.
    #[serde(default)]
    pub soap: Option<SoapSpec>,
    /// More of each account, kept as the connection parameters named here
    /// when it is chosen (Microsoft's `customer_id`: `/ParentCustomerId`).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// The account's currency and time zone, when the answer has them
    /// (recorded on the connection that syncs it: report days are in it).
    #[serde(default)]
    pub currency_pointer: Option<String>,
    #[serde(default)]
    pub time_zone_pointer: Option<String>,
    /// How the list pages, as the same endpoint's stream does (Meta's
    /// ad accounts come 25 a page unless asked for more); read whole before
    /// anything is decided.
    #[serde(default)]
    pub pagination: Pagination,
    /// The parameter that asks for larger pages, and the size asked (the
    /// vendor's documented maximum: fewer pages, within the callback's and
    /// the API's deadlines), as the same endpoint's stream asks.
    #[serde(default)]
    pub page_size_param: Option<String>,
    #[serde(default)]
    pub page_size: Option<u32>,
}

impl DiscoverySpec {
    pub fn paged(&self) -> Paged<'_> {
        Paged { name: "accounts", pagination: &self.pagination, page_size: self.page_size }
    }
}

/// A cheap request: identity or key validation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    #[serde(default = "get")]
    pub method: String,
    /// Relative to the API base URL, or absolute.
    pub path: String,
    /// JSON pointers into the response.
    pub account_id_pointer: Option<String>,
    pub account_name_pointer: Option<String>,
    /// Where the granted scopes are listed (Recharge `token_information`).
    pub scopes_pointer: Option<String>,
    /// Sent as a GraphQL query (POST to `path`) instead of a GET.
    #[serde(default)]
    pub graphql: Option<GraphqlSpec>,
    /// Sent as a SOAP call (POST of the envelope to `path`) instead of a
    /// GET; the pointers then read the answer's XML by element names.
    #[serde(default)]
    pub soap: Option<SoapSpec>,
}

/// A SOAP 1.1 call: the operation (the `SOAPAction`) and the envelope, whose
/// `{name}` placeholders are filled (XML-escaped) from the credentials and
/// params (`{access_token}`, `{developer_token}`). Its answer is read as a
/// tree of element local names: `/Envelope/Body/GetUserResponse/User/Id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapSpec {
    pub action: String,
    pub envelope: String,
}

/// A GraphQL query, POSTed as `{"query", "variables"}` to the request's path.
/// Its variables: `$first` (the page size), `$after` (the page cursor) and
/// `$query` (the incremental filter).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraphqlSpec {
    pub query: String,
    /// The query root field it reads (held to the published schema).
    pub root_field: String,
    /// The search filter of an incremental run, `{cursor}` standing for the
    /// value (Shopify: `updated_at:>'{cursor}'`).
    #[serde(default)]
    pub filter: Option<String>,
}

fn get() -> String {
    "GET".into()
}

/// A field of an API-key credential.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyField {
    pub name: String,
    pub label: String,
    /// Secret fields go to the vault; others (a store URL) are params.
    pub secret: bool,
    pub pattern: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    pub fields: Vec<KeyField>,
    pub validate: RequestSpec,
    #[serde(default)]
    pub required_scopes: Vec<String>,
    pub help: Option<String>,
}

/// How a stream (or an accounts list) pages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    #[default]
    None,
    /// GraphQL connections: `pageInfo.endCursor` goes back as `$after` while
    /// `pageInfo.hasNextPage` is true.
    GraphqlCursor {
        end_cursor_pointer: String,
        has_next_pointer: String,
    },
    /// The next cursor is in the body; sent back as `param`.
    CursorInBody {
        next_pointer: String,
        param: String,
        /// Later pages send the token alone, without the first page's
        /// parameters (Recharge 2021-11).
        #[serde(default)]
        alone: bool,
    },
    /// RFC 8288 `Link: <...>; rel="next"`.
    LinkHeader,
    PageNumber {
        param: String,
        start: u32,
    },
    Offset {
        param: String,
    },
    SinceId {
        param: String,
        id_field: String,
    },
}

/// What following a list's pages needs: its name (for errors), how it
/// pages, and its full page's size, when the platform says.
#[derive(Clone, Copy, Debug)]
pub struct Paged<'a> {
    pub name: &'a str,
    pub pagination: &'a Pagination,
    pub page_size: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    pub name: String,
    pub path: String,
    /// JSON pointer to the array of records ("" for a top-level array).
    pub records_pointer: String,
    pub pagination: Pagination,
    /// Record field used as the incremental cursor.
    pub cursor_field: Option<String>,
    /// Query parameter that takes the cursor (`updated_at_min`).
    pub cursor_param: Option<String>,
    /// The first run asks from the history window back (SP-API getOrders
    /// requires `CreatedAfter` or `LastUpdatedAfter`).
    #[serde(default)]
    pub initial_window: bool,
    /// How often it syncs (the connection's interval is the shortest of its
    /// selected streams').
    #[serde(default)]
    pub sync_interval_minutes: Option<u32>,
    /// Sent as a GraphQL query instead of a GET (Shopify's Admin API).
    #[serde(default)]
    pub graphql: Option<GraphqlSpec>,
    /// Query parameters from the app credentials, as templates (TikTok's
    /// `advertiser/get`: `app_id={client_id}`, `secret={client_secret}`).
    #[serde(default)]
    pub credential_query: BTreeMap<String, String>,
    /// How cursor values compare (dates with their offsets, numbers).
    #[serde(default)]
    pub cursor_type: CursorType,
    /// How the cursor is written into its parameter, `{cursor}` standing for
    /// the value (Klaviyo: `greater-than(updated,{cursor})` in `filter`).
    #[serde(default)]
    pub cursor_format: Option<String>,
    /// JSON pointer to the record inside each item of the list, when the
    /// platform wraps them (Snapchat: `/organization`).
    #[serde(default)]
    pub record_pointer: Option<String>,
    pub page_size_param: Option<String>,
    pub page_size: Option<u32>,
    /// JSON pointer to the total record count, when the platform gives one.
    pub total_pointer: Option<String>,
    #[serde(default = "yes")]
    pub default_selected: bool,
    /// Scopes a grant must hold for this stream (else it is shown as
    /// unavailable, with the reason, rather than offered and then failed).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// A report (rows by day) rather than a list: read in date windows,
    /// the last days re-read on every run and replaced.
    #[serde(default)]
    pub report: Option<ReportSpec>,
}

impl StreamSpec {
    pub fn paged(&self) -> Paged<'_> {
        Paged { name: &self.name, pagination: &self.pagination, page_size: self.page_size }
    }

    /// Whether any of the stream's templates (path, query, body, headers)
    /// takes `{var}`.
    pub fn names_var(&self, var: &str) -> bool {
        serde_json::to_string(self).is_ok_and(|s| s.contains(&format!("{{{var}}}")))
    }
}

/// A report stream: the request for one date window (its method, query,
/// body and headers, as templates where `{from}` and `{to}` are the
/// window's first and last day and `{account_id}` the sub-account the
/// connection syncs), the window each request covers, how far back the
/// first run reads, how many recent days every run reads again (platforms
/// restate them: conversions arrive late), where a row's day is, and where
/// its spend facts are (the normalised daily spend table). The rows are at
/// the stream's `records_pointer`, where `*` stands for every element of an
/// array (Google Ads' stream of batches: `/*/results`); pages within a
/// window follow the stream's pagination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSpec {
    /// `GET` (default) or `POST`.
    #[serde(default = "get")]
    pub method: String,
    /// Query parameters: a string is a template; an object or array is a
    /// JSON template, sent as its JSON text (Meta's `time_range`, TikTok's
    /// `dimensions`).
    #[serde(default)]
    pub query: BTreeMap<String, serde_json::Value>,
    /// A JSON body template (a GAQL query, a GA4 `runReport` request); a
    /// string is sent as its text (a SOAP envelope, where the credentials'
    /// placeholders are filled too, XML-escaped).
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    /// The body's content type (default `application/json`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Headers of this request only, as templates (Amazon Ads' profile scope).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The days' format in the request (chrono, default `%Y-%m-%d`).
    #[serde(default = "iso_day")]
    pub date_format: String,
    #[serde(default = "one")]
    pub window_days: u32,
    #[serde(default = "seven")]
    pub lookback_days: u32,
    /// How far back the first run reads (default: the deployment's history).
    #[serde(default)]
    pub history_days: Option<u32>,
    /// The pointer to a row's day.
    pub date_pointer: String,
    /// The day's format in a row (default: `YYYY-MM-DD` at its start,
    /// whatever follows: `2025-01-31 00:00:00`, `2025-01-31T00:00:00-08:00`).
    #[serde(default)]
    pub row_date_format: Option<String>,
    /// Rows that hold a list of values a day each (X Ads stats: every
    /// metric an array from the window's first day): each becomes one row a
    /// day, with `date` and the day's value of every metric under `metrics`.
    #[serde(default)]
    pub series: Option<SeriesSpec>,
    /// The report is built in the background: created by the request
    /// above, then polled and downloaded.
    #[serde(default)]
    pub job: Option<ReportJob>,
    /// Where a row's spend facts are.
    pub spend: SpendMapping,
}

/// Where a row's daily series are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesSpec {
    /// The object whose members are the metrics' arrays.
    pub metrics_pointer: String,
}

/// An asynchronous report (Amazon Ads reporting v3): the request creates
/// it; its id is saved and polled on a delayed continuation until it is
/// done; the file it names is downloaded and streamed into the sink.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportJob {
    /// The job's id in the answer to the create request.
    pub id_pointer: String,
    /// The poll request's path (`{job_id}` is the id), and its method and
    /// body when it is not a GET (Microsoft's SOAP `PollGenerateReport`).
    pub poll_path: String,
    #[serde(default = "get")]
    pub poll_method: String,
    #[serde(default)]
    pub poll_body: Option<serde_json::Value>,
    /// The poll's own headers (its `SOAPAction`), else the report's.
    #[serde(default)]
    pub poll_headers: Option<BTreeMap<String, String>>,
    pub status_pointer: String,
    /// Statuses that mean the file is ready, and that it never will be.
    pub done: Vec<String>,
    pub failed: Vec<String>,
    /// The file's URL in the poll's answer.
    pub url_pointer: String,
    /// What the file is.
    pub file: ReportFile,
    /// The rows in a JSON file ("" for a top-level array).
    #[serde(default)]
    pub file_rows_pointer: String,
    /// Hosts the file may be downloaded from (`*.` allows subdomains). The
    /// download carries no credentials and follows no redirect.
    pub download_hosts: Vec<String>,
    /// Seconds between polls (default 30).
    #[serde(default = "thirty")]
    pub poll_seconds: u32,
    /// Polls before the job is given up and created again (default 40).
    #[serde(default = "forty")]
    pub max_polls: u32,
}

/// A downloaded report file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportFile {
    Json,
    GzipJson,
    JsonLines,
    GzipJsonLines,
    Csv,
    GzipCsv,
    /// A zip archive holding one CSV file (Microsoft Advertising).
    ZipCsv,
}

/// Pointers into a report row for the normalised daily spend facts. A
/// pointer may start with `../` (the element a `*` matched one level up:
/// Snapchat's campaign around its days), and a segment `[key=value]`
/// picks the array element whose `key` is `value` (Meta's `actions`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendMapping {
    /// None for a report without spend (GA4's sessions).
    #[serde(default)]
    pub spend: Option<String>,
    /// The spend (and the conversion value) are in millionths of the
    /// currency unit (Google Ads `costMicros`, Snapchat `spend`).
    #[serde(default)]
    pub spend_micros: bool,
    #[serde(default)]
    pub conversion_value_micros: bool,
    /// The row's currency and time zone; else the account's (recorded at
    /// discovery).
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub account_name: Option<String>,
    #[serde(default)]
    pub campaign_id: Option<String>,
    #[serde(default)]
    pub campaign_name: Option<String>,
    #[serde(default)]
    pub impressions: Option<String>,
    #[serde(default)]
    pub clicks: Option<String>,
    #[serde(default)]
    pub conversions: Option<String>,
    #[serde(default)]
    pub conversion_value: Option<String>,
    /// Sessions and users (GA4: not spend, but the same daily table).
    #[serde(default)]
    pub sessions: Option<String>,
    #[serde(default)]
    pub users: Option<String>,
    /// The row's traffic source (GA4 `sessionSourceMedium`).
    #[serde(default)]
    pub source: Option<String>,
}

fn iso_day() -> String {
    "%Y-%m-%d".into()
}

fn one() -> u32 {
    1
}

fn seven() -> u32 {
    7
}

fn thirty() -> u32 {
    30
}

fn forty() -> u32 {
    40
}

fn yes() -> bool {
    true
}

/// How the values of a stream's cursor field compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CursorType {
    /// An RFC 3339 date, else an RFC 2822 date, else a number, else text.
    #[default]
    Auto,
    /// ISO 8601 / RFC 3339, offsets honoured.
    Iso8601,
    /// RFC 2822 (`Tue, 05 Nov 2026 10:00:00 -0500`).
    Rfc2822,
    /// Seconds (or milliseconds) since the epoch.
    Epoch,
    /// Compared as text.
    Text,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlatformEntry {
    pub id: PlatformId,
    pub name: String,
    pub category: String,
    pub method: AuthMethod,
    /// Whether it can be a data source, an export destination, or both.
    pub roles: Vec<ConnectionRole>,
    /// The platform role the authorizing user needs, shown to users.
    pub required_role: Option<String>,
    pub docs_url: Option<String>,
    #[serde(default)]
    pub credentials: CredentialSource,
    #[serde(default)]
    pub params: Vec<ParamSpec>,
    pub oauth: Option<OAuthSpec>,
    pub api_key: Option<ApiKeySpec>,
    pub api: Option<ApiSpec>,
    pub identity: Option<RequestSpec>,
    /// What a grant reaches (a Google Ads manager's customers, a Meta
    /// user's ad accounts, Amazon Ads profiles, GA4 accounts).
    #[serde(default)]
    pub discovery: Option<DiscoverySpec>,
    #[serde(default)]
    pub streams: Vec<StreamSpec>,
    /// Built-in sandbox platform (local stack, tests).
    #[serde(default)]
    pub sandbox: bool,
    /// Shown when the entry cannot be used yet.
    pub note: Option<String>,
    /// The API version the entry pins, and when the vendor stops serving it.
    #[serde(default)]
    pub api_version: Option<ApiVersion>,
    /// How often its connections sync when no stream says otherwise.
    #[serde(default)]
    pub sync_interval_minutes: Option<u32>,
    /// What each value of a connect-time parameter implies: more template
    /// values (a region's consent host, token host, API host and default
    /// marketplace).
    #[serde(default)]
    pub param_values: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
}

/// An API version pinned in an entry's URLs or headers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiVersion {
    /// As it appears in the entry (`2026-10`, `v25.0`, `v1.3`).
    pub pinned: String,
    /// The vendor's published end of service for it, if it has one.
    #[serde(default)]
    pub sunset: Option<chrono::NaiveDate>,
    /// Where the date (or its absence) comes from.
    pub source: String,
}

impl PlatformEntry {
    fn check(&self) -> Result<(), String> {
        let need = |ok: bool, what: &str| {
            if ok {
                Ok(())
            } else {
                Err(format!("{}: {what}", self.id))
            }
        };
        match self.method {
            AuthMethod::Oauth2 | AuthMethod::Oauth1 => need(self.oauth.is_some(), "an OAuth entry needs `oauth`")?,
            _ => {}
        }
        if let Some(o) = &self.oauth {
            let endpoints = !o.authorize_url.is_empty() && !o.token_url.is_empty();
            need(
                endpoints || o.issuer.is_some(),
                "`oauth` needs authorize_url and token_url, or an issuer to discover them",
            )?;
            need(!o.iss_parameter || o.issuer.is_some(), "`iss_parameter` needs the `issuer`")?;
        }
        match self.method {
            AuthMethod::Oauth2 | AuthMethod::Oauth1 => {}
            AuthMethod::ApiKey => need(self.api_key.is_some(), "an API-key entry needs `api_key`")?,
            AuthMethod::FileUpload => {}
        }
        need(!self.roles.is_empty(), "`roles` is empty")?;
        for p in &self.params {
            regex_lite::Regex::new(&p.pattern).map_err(|e| format!("{}: param {}: {e}", self.id, p.name))?;
        }
        if let Some(k) = &self.api_key {
            for f in &k.fields {
                regex_lite::Regex::new(&f.pattern).map_err(|e| format!("{}: key field {}: {e}", self.id, f.name))?;
            }
        }
        Ok(())
    }

    /// The streams a new connection starts with, selected by default or not.
    pub fn default_streams(&self) -> Vec<crate::domain::StreamSelection> {
        self.streams
            .iter()
            .map(|s| crate::domain::StreamSelection { name: s.name.clone(), selected: s.default_selected })
            .collect()
    }

    /// Validates connect-time params against the entry: every declared one
    /// present and matching its pattern, nothing undeclared.
    /// The platform's interval for a selection of streams: the shortest of
    /// the selected streams', else the entry's, else the service's default.
    pub fn sync_interval(&self, selected: &[crate::domain::StreamSelection]) -> u32 {
        self.interval_of(|s| selected.iter().any(|sel| sel.selected && sel.name == s.name))
    }

    /// The interval of the platform's quickest stream: how often a
    /// connection that selects everything syncs.
    pub fn quickest_sync_interval(&self) -> u32 {
        self.interval_of(|_| true)
    }

    fn interval_of(&self, include: impl Fn(&StreamSpec) -> bool) -> u32 {
        self.streams
            .iter()
            .filter(|s| include(s))
            .filter_map(|s| s.sync_interval_minutes)
            .min()
            .or(self.sync_interval_minutes)
            .unwrap_or(crate::domain::policy::DEFAULT_SYNC_INTERVAL_MINUTES)
    }

    /// Adds what the given parameters imply (`param_values`) to them.
    pub fn expand_params(&self, params: &mut BTreeMap<String, String>) {
        let implied: Vec<(String, String)> = self
            .param_values
            .iter()
            .filter_map(|(name, by_value)| by_value.get(params.get(name)?))
            .flat_map(|values| values.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect();
        for (k, v) in implied {
            params.entry(k).or_insert(v);
        }
    }

    pub fn check_params(&self, given: &BTreeMap<String, String>) -> Result<(), Error> {
        for name in given.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                return Err(Error::invalid(format!("params.{name}"), format!("{} takes no such parameter", self.name)));
            }
        }
        for p in &self.params {
            let value = given
                .get(&p.name)
                .ok_or_else(|| Error::invalid(format!("params.{}", p.name), format!("{} is required", p.label)))?;
            let re = regex_lite::Regex::new(&format!("^(?:{})$", p.pattern))
                .map_err(|e| Error::Config(format!("{}: {e}", self.id)))?;
            if value.len() > 255 || !re.is_match(value) {
                let example = p.example.as_deref().map(|e| format!(", for example {e}")).unwrap_or_default();
                return Err(Error::invalid(format!("params.{}", p.name), format!("{} is not valid{example}", p.label)));
            }
        }
        Ok(())
    }
}

/// The loaded catalog.
#[derive(Clone, Debug)]
pub struct Catalog {
    entries: BTreeMap<String, PlatformEntry>,
}

/// The catalog an app holds. The built-in one is loaded on its first use:
/// parsing and checking it is half a millisecond, as long as the rest of a
/// function's start, and the tests hold that it loads (whatever the sandbox
/// setting and public URL), so nothing can fail later. A deployment's
/// overrides are loaded at once, so a mistake in them stops the start with
/// its message.
pub struct LazyCatalog {
    options: CatalogOptions,
    loaded: std::sync::OnceLock<Catalog>,
}

impl LazyCatalog {
    pub fn new(options: CatalogOptions) -> Result<Self, Error> {
        let lazy = Self { loaded: std::sync::OnceLock::new(), options };
        if lazy.options.overrides().is_some() {
            let _ = lazy.loaded.set(Catalog::load(&lazy.options)?);
        }
        Ok(lazy)
    }
}

impl std::ops::Deref for LazyCatalog {
    type Target = Catalog;

    fn deref(&self) -> &Catalog {
        self.loaded
            .get_or_init(|| Catalog::load(&self.options).expect("the built-in catalog loads (held by catalog::tests)"))
    }
}

/// Options that shape the loaded catalog.
#[derive(Clone, Debug, Default)]
pub struct CatalogOptions {
    pub public_base_url: String,
    pub include_sandbox: bool,
    /// A JSON file path, or inline JSON starting with `{`.
    pub overrides: Option<String>,
}

impl CatalogOptions {
    /// The deployment's overrides, if it set any.
    fn overrides(&self) -> Option<&str> {
        self.overrides.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
}

fn substitute(value: &mut serde_json::Value, vars: &[(&str, &str)]) {
    match value {
        serde_json::Value::String(s) => {
            for (k, v) in vars {
                if s.contains(k) {
                    *s = s.replace(k, v);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, vars)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| substitute(x, vars)),
        _ => {}
    }
}

impl Catalog {
    pub fn load(options: &CatalogOptions) -> Result<Self, Error> {
        let cfg = |m: String| Error::Config(format!("catalog: {m}"));
        let mut doc: serde_json::Value = serde_json::from_str(BUILT_IN).map_err(|e| cfg(e.to_string()))?;
        if let Some(src) = options.overrides() {
            let text = if src.starts_with('{') {
                src.to_owned()
            } else {
                std::fs::read_to_string(src).map_err(|e| cfg(format!("CATALOG_OVERRIDES file {src}: {e}")))?
            };
            let patch: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| cfg(format!("CATALOG_OVERRIDES is not JSON: {e}")))?;
            if !patch.get("platforms").is_some_and(|p| p.is_object()) {
                return Err(cfg("CATALOG_OVERRIDES must be {\"platforms\": {\"<id>\": {...}}}".into()));
            }
            json_patch::merge(&mut doc, &patch);
        }
        let vars = [("{public_base_url}", options.public_base_url.trim_end_matches('/'))];
        substitute(&mut doc, &vars);
        let platforms =
            doc.get("platforms").and_then(|p| p.as_object()).ok_or_else(|| cfg("no `platforms` object".into()))?;
        let mut entries = BTreeMap::new();
        for (id, raw) in platforms {
            if raw.is_null() {
                continue;
            }
            let mut raw = raw.clone();
            if let Some(o) = raw.as_object_mut() {
                o.entry("id").or_insert_with(|| serde_json::Value::String(id.clone()));
            }
            let entry: PlatformEntry = serde_json::from_value(raw).map_err(|e| cfg(format!("{id}: {e}")))?;
            if entry.id.as_str() != id {
                return Err(cfg(format!("{id}: the id field says {}", entry.id)));
            }
            entry.check().map_err(cfg)?;
            if entry.sandbox && !options.include_sandbox {
                continue;
            }
            entries.insert(id.clone(), entry);
        }
        Ok(Self { entries })
    }

    pub fn get(&self, id: &str) -> Result<&PlatformEntry, Error> {
        self.entries.get(id).ok_or_else(|| Error::UnknownPlatform(id.chars().take(40).collect()))
    }

    pub fn entries(&self) -> impl Iterator<Item = &PlatformEntry> {
        self.entries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> CatalogOptions {
        CatalogOptions { public_base_url: "http://127.0.0.1:3000".into(), include_sandbox: true, overrides: None }
    }

    #[test]
    fn the_built_in_catalog_loads_on_first_use_and_overrides_at_once() {
        // What LazyCatalog's first use relies on: the built-in catalog
        // loads whatever the sandbox setting and public URL (Config only
        // lets a parsed URL or nothing through).
        for base in ["", "http://127.0.0.1:3000", "https://connections.example.com", "https://x.example/base"] {
            for include_sandbox in [false, true] {
                let lazy =
                    LazyCatalog::new(CatalogOptions { public_base_url: base.into(), include_sandbox, overrides: None });
                let lazy = lazy.unwrap();
                assert!(lazy.loaded.get().is_none(), "not loaded before its first use");
                assert!(lazy.get("shopify").is_ok(), "{base} {include_sandbox}");
            }
        }
        // A deployment's overrides are checked at the start.
        let bad =
            CatalogOptions { overrides: Some(r#"{"platforms": {"shopify": {"method": "nope"}}}"#.into()), ..options() };
        assert!(LazyCatalog::new(bad).is_err());
        let good = CatalogOptions { overrides: Some(r#"{"platforms": {"stripe": null}}"#.into()), ..options() };
        let lazy = LazyCatalog::new(good).unwrap();
        assert!(lazy.loaded.get().is_some() && lazy.get("stripe").is_err());
    }

    #[test]
    fn built_in_catalog_has_every_platform_and_checks() {
        let c = Catalog::load(&options()).unwrap();
        for id in PLATFORM_IDS.iter().chain(&SANDBOX_IDS) {
            c.get(id).unwrap_or_else(|_| panic!("{id} missing"));
        }
        let sandbox = c.get("sandbox_oauth").unwrap().oauth.as_ref().unwrap();
        assert!(sandbox.token_url.starts_with("http://127.0.0.1:3000/sandbox/"), "{}", sandbox.token_url);
        assert!(c.get("google_ads").unwrap().oauth.as_ref().unwrap().pkce);
        assert!(!Catalog::load(&CatalogOptions { include_sandbox: false, ..options() })
            .unwrap()
            .entries()
            .any(|e| e.sandbox));
    }

    #[test]
    fn overrides_patch_add_and_remove_entries() {
        let overrides = r#"{"platforms": {
            "shopify": {"oauth": {"token_url": "https://oauth.example.com/token"}},
            "stripe": null,
            "acme": {"name": "Acme", "category": "commerce", "method": "api_key", "roles": ["source"],
                     "api_key": {"fields": [{"name": "api_key", "label": "Key", "secret": true, "pattern": "[a-z]+"}],
                                 "validate": {"path": "/me"}}}
        }}"#;
        let c = Catalog::load(&CatalogOptions { overrides: Some(overrides.into()), ..options() }).unwrap();
        let shopify = c.get("shopify").unwrap().oauth.as_ref().unwrap();
        assert_eq!(shopify.token_url, "https://oauth.example.com/token");
        assert!(shopify.authorize_url.contains("{shop}"), "the rest of the entry stays");
        assert!(c.get("stripe").is_err());
        assert_eq!(c.get("acme").unwrap().method, AuthMethod::ApiKey);
    }

    #[test]
    fn bad_overrides_fail_with_the_entry_named() {
        let typo = r#"{"platforms": {"shopify": {"oauth": {"tokn_url": "x"}}}}"#;
        let err = Catalog::load(&CatalogOptions { overrides: Some(typo.into()), ..options() }).unwrap_err();
        assert!(err.to_string().contains("shopify") && err.to_string().contains("tokn_url"), "{err}");
        let incomplete =
            r#"{"platforms": {"acme": {"name": "Acme", "category": "x", "method": "oauth2", "roles": ["source"]}}}"#;
        let err = Catalog::load(&CatalogOptions { overrides: Some(incomplete.into()), ..options() }).unwrap_err();
        assert!(err.to_string().contains("needs `oauth`"), "{err}");
    }

    #[test]
    fn params_are_validated_exactly() {
        let c = Catalog::load(&options()).unwrap();
        let shopify = c.get("shopify").unwrap();
        let p = |v: &str| BTreeMap::from([("shop".to_owned(), v.to_owned())]);
        assert!(shopify.check_params(&p("my-store.myshopify.com")).is_ok());
        for bad in ["evil.com", "my-store.myshopify.com.evil.com", "a/b.myshopify.com", ""] {
            assert!(shopify.check_params(&p(bad)).is_err(), "{bad}");
        }
        assert!(shopify.check_params(&BTreeMap::new()).is_err());
        let extra =
            BTreeMap::from([("shop".to_owned(), "a.myshopify.com".to_owned()), ("x".to_owned(), "y".to_owned())]);
        assert!(shopify.check_params(&extra).is_err());
    }
}
