//! The record sink on S3, spoken over HTTP: requests signed with
//! `aws-sigv4` (the signer the AWS SDK itself uses, with the settings the SDK
//! gives S3: keys encoded once, paths not normalised) and sent with the
//! process's reqwest client (`adapters::tls`); list pages read with
//! `roxmltree`.
//!
//! Why not `aws-sdk-s3`: the sink makes seven plain requests; the SDK crate
//! linked S3's endpoint rules, its Express One Zone session provider and
//! its checksum crates, 0.31 MB of the 4.6 MB zip every function loads, and
//! was the largest SDK crate to build.
//!
//! What it keeps of the SDK's behaviour: credentials from the SDK
//! configuration's provider chain (cached until five minutes before they
//! expire), virtual-hosted addressing in AWS and path style on an overridden
//! endpoint (moto, LocalStack), payloads signed (S3 checks them), idempotent
//! requests retried up to three attempts on throttling, a 5xx, S3's retry
//! codes or a dropped connection, with exponential backoff and full jitter
//! (and at once with fresh credentials when S3 says they expired), and no
//! redirect followed.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use futures::TryStreamExt;
use http::{Method, StatusCode};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::LazySdk;
use crate::adapters::embedded::check_sink_key;
use crate::domain::error::SinkError;
use crate::ports::RecordSink;

/// S3's URI encoding: everything but `A-Z a-z 0-9 - . _ ~` is escaped.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// The same for a key in a path, where `/` separates and stays.
const KEY: &AsciiSet = &UNRESERVED.remove(b'/');

/// The longest a presigned URL may live (SigV4's limit).
const PRESIGN_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
/// Attempts of one request, the first included (the SDK's standard mode).
const ATTEMPTS: u32 = 3;

/// Where the bucket answers and how it is named in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Endpoint {
    /// Scheme, host and any path prefix, without a trailing `/`.
    base: String,
    /// Whether the bucket is the first path segment (else it is the host's
    /// first label, already in `base`).
    path_style: bool,
}

impl Endpoint {
    /// Path style on an overridden endpoint; in AWS virtual-hosted, unless
    /// the bucket's name has a dot (which no wildcard certificate covers).
    fn new(endpoint_url: Option<&str>, bucket: &str, region: &str) -> Self {
        match endpoint_url {
            Some(url) => Self { base: format!("{}/{bucket}", url.trim_end_matches('/')), path_style: true },
            None => {
                let domain = if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" };
                if bucket.contains('.') {
                    Self { base: format!("https://s3.{region}.{domain}/{bucket}"), path_style: true }
                } else {
                    Self { base: format!("https://{bucket}.s3.{region}.{domain}"), path_style: false }
                }
            }
        }
    }

    fn object(&self, key: &str) -> String {
        format!("{}/{}", self.base, utf8_percent_encode(key, KEY))
    }

    /// The bucket itself (list, create): `/` after a virtual host.
    fn bucket(&self) -> String {
        if self.path_style {
            self.base.clone()
        } else {
            format!("{}/", self.base)
        }
    }
}

/// The record sink on S3.
#[derive(Clone)]
pub struct S3Sink {
    sdk: LazySdk,
    bucket: String,
    /// The first backoff's ceiling, doubled per attempt (tests shorten it).
    backoff: Duration,
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    http: OnceLock<Result<reqwest::Client, String>>,
    credentials: tokio::sync::Mutex<Option<Credentials>>,
    endpoint: OnceLock<(Endpoint, String)>,
}

/// A request to send: what is signed and what goes on the wire.
struct Call<'a> {
    method: Method,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Bytes,
    /// Operation name, for errors.
    what: &'a str,
}

impl S3Sink {
    pub fn new(sdk: LazySdk, bucket: impl Into<String>) -> Self {
        Self { sdk, bucket: bucket.into(), backoff: Duration::from_secs(1), inner: Arc::default() }
    }

    async fn endpoint(&self) -> Result<&(Endpoint, String), SinkError> {
        if let Some(ready) = self.inner.endpoint.get() {
            return Ok(ready);
        }
        let sdk = self.sdk.get().await;
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .ok_or_else(|| SinkError::Unavailable("S3: no AWS region is configured (set AWS_REGION)".into()))?;
        let endpoint_url = std::env::var("AWS_ENDPOINT_URL_S3").ok().or_else(|| sdk.endpoint_url().map(str::to_owned));
        let endpoint = Endpoint::new(endpoint_url.as_deref(), &self.bucket, &region);
        Ok(self.inner.endpoint.get_or_init(|| (endpoint, region)))
    }

    fn http(&self) -> Result<&reqwest::Client, SinkError> {
        self.inner
            .http
            .get_or_init(|| {
                crate::adapters::tls::client_builder()
                    .connect_timeout(Duration::from_millis(3_100))
                    .read_timeout(Duration::from_secs(30))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| SinkError::Unavailable(format!("S3: the HTTP client could not be built: {e}")))
    }

    /// The SDK configuration's credentials, fetched again five minutes
    /// before they expire (credentials without an expiry, as a Lambda
    /// function's environment gives them, are kept).
    async fn credentials(&self) -> Result<Credentials, SinkError> {
        let mut cached = self.inner.credentials.lock().await;
        let fresh = |c: &Credentials| c.expiry().is_none_or(|at| at > SystemTime::now() + Duration::from_secs(300));
        if let Some(c) = cached.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let provider = self
            .sdk
            .get()
            .await
            .credentials_provider()
            .ok_or_else(|| SinkError::Unavailable("S3: no AWS credentials provider is configured".into()))?;
        let got = provider
            .provide_credentials()
            .await
            .map_err(|e| SinkError::Unavailable(format!("S3: no AWS credentials: {}", super::describe(&e))))?;
        *cached = Some(got.clone());
        Ok(got)
    }

    /// Sends a call, signed afresh per attempt, until S3 answers or refuses
    /// for good: throttling, a 5xx, S3's own "retry" codes and a dropped
    /// connection are tried again, up to three attempts.
    async fn send(&self, call: &Call<'_>) -> Result<Result<reqwest::Response, Refusal>, SinkError> {
        let (_, region) = self.endpoint().await?;
        let client = self.http()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let credentials = self.credentials().await?;
            let request = signed(call, &credentials, region, SystemTime::now())?;
            let request = reqwest::Request::try_from(request.map(reqwest::Body::from))
                .map_err(|e| SinkError::Unavailable(format!("S3 {}: {e}", call.what)))?;
            let refusal = match client.execute(request).await {
                Ok(response) if response.status().is_success() => return Ok(Ok(response)),
                Ok(response) => {
                    let status = response.status();
                    let (code, message) = error_of(&response.bytes().await.unwrap_or_default());
                    Refusal { status, code, message }
                }
                Err(e) if attempt < ATTEMPTS && (e.is_timeout() || e.is_connect() || e.is_request() || e.is_body()) => {
                    self.back_off(attempt).await;
                    continue;
                }
                Err(e) => return Err(SinkError::Unavailable(format!("S3 {}: {}", call.what, without_url(e)))),
            };
            if attempt == ATTEMPTS {
                return Ok(Err(refusal));
            }
            if refusal.expired_credentials() {
                // Fetched again for the next attempt, at once.
                *self.inner.credentials.lock().await = None;
                continue;
            }
            if !refusal.transient() {
                return Ok(Err(refusal));
            }
            self.back_off(attempt).await;
        }
    }

    /// Waits before attempt `attempt + 1` (the SDK's standard mode: from
    /// a second, doubled, at most 20).
    async fn back_off(&self, attempt: u32) {
        let wait = crate::domain::policy::full_jitter(self.backoff, attempt - 1, Duration::from_secs(20));
        tokio::time::sleep(wait).await;
    }

    /// Sends a call that must succeed: a refusal is an error with S3's code
    /// and message.
    async fn ok(&self, call: &Call<'_>) -> Result<reqwest::Response, SinkError> {
        self.send(call).await?.map_err(|refusal| SinkError::Unavailable(refusal.describe(call.what)))
    }

    /// Sends a call for an object that may be missing: `None` for the 404
    /// `missing` allows, an error for any other refusal.
    async fn found(&self, call: &Call<'_>, missing: Missing) -> Result<Option<reqwest::Response>, SinkError> {
        match self.send(call).await? {
            Ok(response) => Ok(Some(response)),
            Err(refusal) if refusal.status == StatusCode::NOT_FOUND && missing.allows(refusal.code.as_deref()) => {
                Ok(None)
            }
            Err(refusal) => Err(SinkError::Unavailable(refusal.describe(call.what))),
        }
    }

    async fn object_call<'a>(&self, method: Method, key: &str, what: &'a str) -> Result<Call<'a>, SinkError> {
        check_sink_key(key)?;
        let (endpoint, _) = self.endpoint().await?;
        Ok(Call { method, url: endpoint.object(key), headers: vec![], body: Bytes::new(), what })
    }
}

/// Which 404 means "no such object" (the rest are errors: a missing bucket
/// is a broken deployment, not an empty one).
#[derive(Clone, Copy)]
enum Missing {
    /// A `NoSuchKey` body (GET).
    Key,
    /// Any 404 (HEAD answers without a body).
    Any,
}

impl Missing {
    fn allows(self, code: Option<&str>) -> bool {
        match self {
            Missing::Key => code == Some("NoSuchKey"),
            Missing::Any => true,
        }
    }
}

/// What S3 answered a call it did not do: its status, and the code and
/// message of its error document.
struct Refusal {
    status: StatusCode,
    code: Option<String>,
    message: Option<String>,
}

impl Refusal {
    /// Throttling, server-side failures, and the codes S3 answers with a
    /// 400 or 403 that pass on a second try (the SDK's transient codes).
    fn transient(&self) -> bool {
        self.status.is_server_error()
            || self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::REQUEST_TIMEOUT
            || matches!(self.code.as_deref(), Some("RequestTimeout" | "SlowDown" | "Throttling" | "InternalError"))
    }

    /// The credentials signed with have expired (or are about to).
    fn expired_credentials(&self) -> bool {
        matches!(self.code.as_deref(), Some("ExpiredToken" | "TokenRefreshRequired"))
    }

    fn describe(&self, what: &str) -> String {
        format!(
            "S3 {what} answered {}: {}{}",
            self.status,
            self.code.as_deref().unwrap_or("no error code"),
            self.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default()
        )
    }
}

/// A reqwest error's text without the request URL (a presigned or object
/// URL is no secret here, but the reason reads better without it).
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() { "timed out" } else { "failed" };
    let e = e.without_url();
    let mut text = format!("request {kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}

/// S3's error document: `<Error><Code>…</Code><Message>…</Message></Error>`.
fn error_of(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(text) = std::str::from_utf8(body) else { return (None, None) };
    let Ok(doc) = roxmltree::Document::parse(text) else { return (None, None) };
    let field = |name: &str| {
        doc.root_element().children().find(|n| n.has_tag_name(name)).and_then(|n| n.text()).map(str::to_owned)
    };
    (field("Code"), field("Message"))
}

/// One page of `ListObjectsV2`: its keys and the token of the next page.
fn list_page(body: &str) -> Result<(Vec<String>, Option<String>), String> {
    let doc = roxmltree::Document::parse(body).map_err(|e| format!("an unreadable list page: {e}"))?;
    let root = doc.root_element();
    if !root.has_tag_name("ListBucketResult") {
        return Err(format!("a list page that is a <{}>", root.tag_name().name()));
    }
    let child = |n: roxmltree::Node<'_, '_>, name: &str| {
        n.children().find(|c| c.has_tag_name(name)).map(|c| c.text().unwrap_or_default().to_owned())
    };
    let keys = root.children().filter(|n| n.has_tag_name("Contents")).filter_map(|n| child(n, "Key")).collect();
    let truncated = child(root, "IsTruncated").is_some_and(|t| t == "true");
    let next = child(root, "NextContinuationToken").filter(|t| !t.is_empty());
    match (truncated, next) {
        (true, None) => Err("a truncated list page without a continuation token".into()),
        (true, next) => Ok((keys, next)),
        (false, _) => Ok((keys, None)),
    }
}

/// The request of a call, signed with SigV4 in its headers, payload hash
/// included (S3 checks the body against it).
fn signed(
    call: &Call<'_>,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<http::Request<Bytes>, SinkError> {
    let mut settings = s3_settings();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let mut request = http::Request::builder().method(call.method.clone()).uri(&call.url);
    for (name, value) in &call.headers {
        request = request.header(*name, value);
    }
    let mut request = request
        .body(call.body.clone())
        .map_err(|e| SinkError::Unavailable(format!("S3 {}: a request that cannot be sent: {e}", call.what)))?;
    apply_signature(&mut request, SignableBody::Bytes(&call.body), settings, credentials, region, time)
        .map_err(|e| SinkError::Unavailable(format!("S3 {}: could not sign the request: {e}", call.what)))?;
    Ok(request)
}

/// A URL that takes one `PUT` of `url` until `expires_in` has passed:
/// SigV4 in the query, the payload unsigned (the uploader's to send).
fn presigned_put(
    url: &str,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
    expires_in: Duration,
) -> Result<String, String> {
    let mut settings = s3_settings();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(expires_in);
    let mut request = http::Request::put(url).body(()).map_err(|e| e.to_string())?;
    apply_signature(&mut request, SignableBody::UnsignedPayload, settings, credentials, region, time)?;
    Ok(request.uri().to_string())
}

/// S3's SigV4 settings, as the SDK sets them for S3: the path is encoded
/// once and never normalised (a key may hold `//` or `./`).
fn s3_settings() -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings
}

fn apply_signature<B>(
    request: &mut http::Request<B>,
    body: SignableBody<'_>,
    settings: SigningSettings,
    credentials: &Credentials,
    region: &str,
    time: SystemTime,
) -> Result<(), String> {
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let uri = request.uri().to_string();
    let headers: Vec<(&str, &str)> =
        request.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
    let signable = SignableRequest::new(request.method().as_str(), uri.as_str(), headers.into_iter(), body)
        .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

#[async_trait]
impl RecordSink for S3Sink {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), SinkError> {
        let mut call = self.object_call(Method::PUT, key, "PutObject").await?;
        call.headers.push(("content-type", content_type.to_owned()));
        call.body = body;
        self.ok(&call).await?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, SinkError> {
        let call = self.object_call(Method::GET, key, "GetObject").await?;
        match self.found(&call, Missing::Key).await? {
            Some(response) => Ok(Some(
                response
                    .bytes()
                    .await
                    .map_err(|e| SinkError::Unavailable(format!("S3 GetObject: {}", without_url(e))))?,
            )),
            None => Ok(None),
        }
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, SinkError> {
        let call = self.object_call(Method::HEAD, key, "HeadObject").await?;
        let Some(response) = self.found(&call, Missing::Any).await? else { return Ok(None) };
        let length = response.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse().ok());
        length.map(Some).ok_or_else(|| SinkError::Unavailable("S3 HeadObject answered without a Content-Length".into()))
    }

    async fn delete(&self, key: &str) -> Result<(), SinkError> {
        let call = self.object_call(Method::DELETE, key, "DeleteObject").await?;
        self.ok(&call).await?;
        Ok(())
    }

    async fn open(&self, key: &str) -> Result<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, SinkError> {
        let call = self.object_call(Method::GET, key, "GetObject").await?;
        let Some(response) = self.found(&call, Missing::Key).await? else { return Ok(None) };
        let body: http::Response<reqwest::Body> = response.into();
        let stream = http_body_util::BodyDataStream::new(body.into_body()).map_err(std::io::Error::other);
        Ok(Some(Box::new(tokio_util::io::StreamReader::new(stream))))
    }

    async fn presign_put(&self, key: &str, expires_in: Duration) -> Result<String, SinkError> {
        check_sink_key(key)?;
        if expires_in.is_zero() || expires_in > PRESIGN_MAX {
            return Err(SinkError::Unavailable(format!(
                "S3: a presigned URL lives between one second and seven days, not {} s",
                expires_in.as_secs()
            )));
        }
        let (endpoint, region) = self.endpoint().await?;
        let credentials = self.credentials().await?;
        presigned_put(&endpoint.object(key), &credentials, region, SystemTime::now(), expires_in)
            .map_err(|e| SinkError::Unavailable(format!("S3: could not presign the upload: {e}")))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let (endpoint, _) = self.endpoint().await?;
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url =
                format!("{}?list-type=2&prefix={}", endpoint.bucket(), utf8_percent_encode(prefix, UNRESERVED));
            if let Some(token) = &token {
                url.push_str(&format!("&continuation-token={}", utf8_percent_encode(token, UNRESERVED)));
            }
            let call = Call { method: Method::GET, url, headers: vec![], body: Bytes::new(), what: "ListObjectsV2" };
            let body = self
                .ok(&call)
                .await?
                .text()
                .await
                .map_err(|e| SinkError::Unavailable(format!("S3 ListObjectsV2: {}", without_url(e))))?;
            let (page, next) =
                list_page(&body).map_err(|e| SinkError::Unavailable(format!("S3 ListObjectsV2: {e}")))?;
            keys.extend(page);
            match next {
                Some(next) if Some(&next) != token.as_ref() => token = Some(next),
                Some(_) => return Err(SinkError::Unavailable("S3 ListObjectsV2: the same page twice".into())),
                None => break,
            }
        }
        keys.sort();
        Ok(keys)
    }
}

/// Creates the bucket, or finds it there already (moto and LocalStack; a
/// deployment's bucket comes from the template).
pub(crate) async fn create_bucket(sdk: &SdkConfig, bucket: &str) -> Result<(), String> {
    let sink = S3Sink::new(LazySdk::ready(sdk.clone()), bucket);
    let (endpoint, _) = sink.endpoint().await.map_err(|e| e.to_string())?;
    let call =
        Call { method: Method::PUT, url: endpoint.bucket(), headers: vec![], body: Bytes::new(), what: "CreateBucket" };
    match sink.send(&call).await.map_err(|e| e.to_string())? {
        Ok(_) => Ok(()),
        Err(Refusal { code: Some(code), .. }) if code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" => {
            Ok(())
        }
        Err(refusal) => Err(refusal.describe("CreateBucket")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::loopback::{self, reply, Reply};

    /// AWS's published SigV4 examples for S3 ("Signature Calculations for
    /// the Authorization Header" and "Query String Authentication" in the
    /// S3 API reference): the example credentials, 24 May 2013, us-east-1.
    fn example_credentials() -> Credentials {
        Credentials::new("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None, None, "example")
    }

    fn may_24_2013() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
    }

    fn examplebucket() -> Endpoint {
        Endpoint::new(None, "examplebucket", "us-east-1")
    }

    fn authorization(request: &http::Request<Bytes>) -> &str {
        request.headers()["authorization"].to_str().unwrap()
    }

    #[test]
    fn a_get_is_signed_as_aws_publishes() {
        // The documentation's host, without a region, as it signs it.
        let call = Call {
            method: Method::GET,
            url: "https://examplebucket.s3.amazonaws.com/test.txt".into(),
            headers: vec![("range", "bytes=0-9".into())],
            body: Bytes::new(),
            what: "GetObject",
        };
        let request = signed(&call, &example_credentials(), "us-east-1", may_24_2013()).unwrap();
        assert_eq!(
            authorization(&request),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn a_put_signs_its_payload_and_encodes_its_key_as_aws_publishes() {
        let endpoint = Endpoint { base: "https://examplebucket.s3.amazonaws.com".into(), path_style: false };
        let url = endpoint.object("test$file.text");
        assert_eq!(url, "https://examplebucket.s3.amazonaws.com/test%24file.text");
        let call = Call {
            method: Method::PUT,
            url,
            headers: vec![
                ("date", "Fri, 24 May 2013 00:00:00 GMT".into()),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY".into()),
            ],
            body: Bytes::from_static(b"Welcome to Amazon S3."),
            what: "PutObject",
        };
        let request = signed(&call, &example_credentials(), "us-east-1", may_24_2013()).unwrap();
        assert_eq!(
            request.headers()["x-amz-content-sha256"],
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        assert!(
            authorization(&request).ends_with(
                "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
                 Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            ),
            "{}",
            authorization(&request)
        );
    }

    #[test]
    fn a_list_query_is_signed_as_aws_publishes() {
        let call = Call {
            method: Method::GET,
            url: "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J".into(),
            headers: vec![],
            body: Bytes::new(),
            what: "ListObjects",
        };
        let request = signed(&call, &example_credentials(), "us-east-1", may_24_2013()).unwrap();
        assert!(authorization(&request)
            .ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"));
    }

    #[test]
    fn a_presigned_url_is_built_as_aws_publishes() {
        // AWS's example presigns a GET; `presigned_put` differs only in the
        // method, and moto takes its URLs in the upload tests.
        let mut request = http::Request::get("https://examplebucket.s3.amazonaws.com/test.txt").body(()).unwrap();
        let mut settings = s3_settings();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(86_400));
        apply_signature(
            &mut request,
            SignableBody::UnsignedPayload,
            settings,
            &example_credentials(),
            "us-east-1",
            may_24_2013(),
        )
        .unwrap();
        let query: std::collections::BTreeMap<String, String> =
            url::form_urlencoded::parse(request.uri().query().unwrap().as_bytes()).into_owned().collect();
        assert_eq!(query["X-Amz-SignedHeaders"], "host");
        assert_eq!(query["X-Amz-Expires"], "86400");
        assert_eq!(query["X-Amz-Signature"], "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
        // The PUT form carries a session token when the credentials have one.
        let with_token = Credentials::new("AKID", "secret", Some("token/+=".into()), None, "t");
        let url = presigned_put(
            &examplebucket().object("uploads/a.csv"),
            &with_token,
            "us-east-1",
            may_24_2013(),
            Duration::from_secs(900),
        )
        .unwrap();
        assert!(url.starts_with("https://examplebucket.s3.us-east-1.amazonaws.com/uploads/a.csv?"), "{url}");
        assert!(url.contains("X-Amz-Security-Token=token%2F%2B%3D"), "{url}");
    }

    #[test]
    fn addressing_is_virtual_hosted_in_aws_and_path_style_on_an_endpoint() {
        assert_eq!(
            examplebucket().object("a/b=c.jsonl"),
            "https://examplebucket.s3.us-east-1.amazonaws.com/a/b%3Dc.jsonl"
        );
        assert_eq!(examplebucket().bucket(), "https://examplebucket.s3.us-east-1.amazonaws.com/");
        let china = Endpoint::new(None, "b", "cn-north-1");
        assert_eq!(china.bucket(), "https://b.s3.cn-north-1.amazonaws.com.cn/");
        let dotted = Endpoint::new(None, "my.bucket", "eu-west-1");
        assert_eq!(dotted.object("k"), "https://s3.eu-west-1.amazonaws.com/my.bucket/k");
        let moto = Endpoint::new(Some("http://127.0.0.1:5000/"), "records", "us-east-1");
        assert_eq!(moto.object("x/y"), "http://127.0.0.1:5000/records/x/y");
        assert_eq!(moto.bucket(), "http://127.0.0.1:5000/records");
    }

    #[test]
    fn list_pages_and_error_documents_are_read() {
        let page = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>examplebucket</Name><Prefix>r/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>r/a.jsonl</Key><Size>3</Size></Contents>
  <Contents><Key>r/b.jsonl</Key><Size>4</Size></Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>"#;
        let (keys, next) = list_page(page).unwrap();
        assert_eq!(keys, ["r/a.jsonl", "r/b.jsonl"]);
        assert_eq!(next.as_deref(), Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="));
        let last = page.replace("<IsTruncated>true", "<IsTruncated>false");
        assert_eq!(list_page(&last).unwrap().1, None);
        let broken = page.replace(
            "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>",
            "",
        );
        assert!(list_page(&broken).is_err(), "a truncated page must say where to go on");
        assert!(list_page("<Error><Code>AccessDenied</Code></Error>").is_err());

        let error = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The resource you requested does not exist</Message><Resource>/r/x</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>";
        assert_eq!(
            error_of(error),
            (Some("NoSuchKey".into()), Some("The resource you requested does not exist".into()))
        );
        assert_eq!(error_of(b""), (None, None));
    }

    /// A stand-in for S3 on loopback (`adapters::loopback`): each request
    /// answered with the next scripted reply, and recorded.
    async fn fake_s3(script: Vec<Reply>) -> (S3Sink, tokio::task::JoinHandle<Vec<String>>) {
        let (base, server) = loopback::scripted(script).await;
        (sink_on(Some("eu-west-1"), &base), server)
    }

    /// A sink on `endpoint`, with test credentials and a short backoff.
    fn sink_on(region: Option<&str>, endpoint: &str) -> S3Sink {
        let mut sdk = SdkConfig::builder();
        sdk.set_region(region.map(|r| aws_config::Region::new(r.to_owned())));
        let sdk = sdk
            .endpoint_url(endpoint)
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "AKIDTEST", "secret", None, None, "test",
            )))
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        S3Sink { backoff: Duration::from_millis(1), ..S3Sink::new(LazySdk::ready(sdk), "records") }
    }

    const SLOW_DOWN: &str = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

    #[tokio::test]
    async fn throttling_is_retried_with_a_fresh_signature_and_then_reported_with_its_code() {
        crate::adapters::tls::install_default_provider();
        let (sink, server) = fake_s3(vec![reply("503 Slow Down", SLOW_DOWN), reply("200 OK", "")]).await;
        sink.put("records/a.jsonl", Bytes::from_static(b"{}\n"), "application/x-ndjson").await.unwrap();
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 2, "the second attempt went through");
        for request in &seen {
            assert!(request.starts_with("PUT /records/records/a.jsonl HTTP/1.1"), "{request}");
            assert!(request.contains("authorization: AWS4-HMAC-SHA256 Credential=AKIDTEST/"), "{request}");
            assert!(request.contains("/eu-west-1/s3/aws4_request"), "{request}");
            assert!(request.ends_with("\r\n\r\n{}\n"), "the body is sent whole: {request}");
        }

        let (sink, server) = fake_s3(vec![reply("503 Slow Down", SLOW_DOWN); 3]).await;
        let e = sink.put("records/a.jsonl", Bytes::new(), "text/plain").await.unwrap_err().to_string();
        assert_eq!(server.await.unwrap().len(), 3, "three attempts, no more");
        assert!(e.contains("S3 PutObject answered 503 Service Unavailable: SlowDown (Please reduce"), "{e}");

        // Expired credentials are fetched again and the call signed anew.
        let expired = "<Error><Code>ExpiredToken</Code><Message>The provided token has expired.</Message></Error>";
        let (sink, server) = fake_s3(vec![reply("400 Bad Request", expired), reply("200 OK", "")]).await;
        sink.delete("records/b.jsonl").await.unwrap();
        assert_eq!(server.await.unwrap().len(), 2);

        // S3's "too slow sending the body" is a 400 that passes on a second try.
        let slow = "<Error><Code>RequestTimeout</Code><Message>Your socket connection to the server was not read from or written to within the timeout period.</Message></Error>";
        let (sink, server) = fake_s3(vec![reply("400 Bad Request", slow), reply("200 OK", "")]).await;
        sink.put("records/b.jsonl", Bytes::from_static(b"{}\n"), "application/x-ndjson").await.unwrap();
        assert_eq!(server.await.unwrap().len(), 2);

        let denied = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        let (sink, server) = fake_s3(vec![reply("403 Forbidden", denied)]).await;
        let e = sink.delete("records/a.jsonl").await.unwrap_err().to_string();
        assert_eq!(server.await.unwrap().len(), 1, "a refusal is not retried");
        assert!(e.contains("AccessDenied"), "{e}");
    }

    #[tokio::test]
    async fn a_missing_object_is_none_and_a_missing_bucket_is_an_error() {
        crate::adapters::tls::install_default_provider();
        let no_key = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";
        let no_bucket =
            "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>";
        let (sink, server) = fake_s3(vec![
            reply("404 Not Found", no_key),
            reply("404 Not Found", no_bucket),
            reply("404 Not Found", ""),
            reply("200 OK", "a,b\n1,2\n"),
            reply("200 OK", "a,b\n1,2\n"),
        ])
        .await;
        assert_eq!(sink.get("uploads/x.csv").await.unwrap(), None);
        let e = sink.get("uploads/x.csv").await.unwrap_err().to_string();
        assert!(e.contains("NoSuchBucket"), "{e}");
        assert_eq!(sink.size("uploads/x.csv").await.unwrap(), None, "HEAD answers 404 without a body");
        assert_eq!(sink.size("uploads/x.csv").await.unwrap(), Some(8));
        let mut text = String::new();
        let mut reader = sink.open("uploads/x.csv").await.unwrap().unwrap();
        tokio::io::AsyncReadExt::read_to_string(&mut reader, &mut text).await.unwrap();
        assert_eq!(text, "a,b\n1,2\n");
        let seen = server.await.unwrap();
        assert!(seen[2].starts_with("HEAD /records/uploads/x.csv "), "{}", seen[2]);
    }

    #[tokio::test]
    async fn a_list_follows_its_continuation_tokens_encoded() {
        crate::adapters::tls::install_default_provider();
        let page = |keys: &[&str], next: Option<&str>| {
            let contents: String = keys.iter().map(|k| format!("<Contents><Key>{k}</Key></Contents>")).collect();
            let more = match next {
                Some(t) => format!("<IsTruncated>true</IsTruncated><NextContinuationToken>{t}</NextContinuationToken>"),
                None => "<IsTruncated>false</IsTruncated>".into(),
            };
            reply("200 OK", &format!("<ListBucketResult>{contents}{more}</ListBucketResult>"))
        };
        let (sink, server) = fake_s3(vec![page(&["r/b", "r/c"], Some("a+b/c=")), page(&["r/a"], None)]).await;
        assert_eq!(sink.list("r/").await.unwrap(), ["r/a", "r/b", "r/c"]);
        let seen = server.await.unwrap();
        assert!(seen[0].starts_with("GET /records?list-type=2&prefix=r%2F HTTP/1.1"), "{}", seen[0]);
        assert!(
            seen[1].starts_with("GET /records?list-type=2&prefix=r%2F&continuation-token=a%2Bb%2Fc%3D HTTP/1.1"),
            "{}",
            seen[1]
        );
    }

    #[tokio::test]
    async fn what_s3_cannot_be_asked_or_answers_amiss_is_an_error_that_says_so() {
        crate::adapters::tls::install_default_provider();
        // No region: nothing is sent.
        let e = sink_on(None, "http://127.0.0.1:9").put("records/a", Bytes::new(), "text/plain").await.unwrap_err();
        assert!(e.to_string().contains("no AWS region is configured (set AWS_REGION)"), "{e}");
        // A HEAD without its length; a list that hands the same page back.
        let headless = Some("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_owned());
        let page = "<ListBucketResult><Contents><Key>r/a</Key></Contents><IsTruncated>true</IsTruncated><NextContinuationToken>t</NextContinuationToken></ListBucketResult>";
        let (sink, server) = fake_s3(vec![headless, reply("200 OK", page), reply("200 OK", page)]).await;
        let e = sink.size("records/a").await.unwrap_err().to_string();
        assert!(e.contains("HeadObject answered without a Content-Length"), "{e}");
        let e = sink.list("r/").await.unwrap_err().to_string();
        assert!(e.contains("the same page twice"), "{e}");
        assert_eq!(server.await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_presigned_url_outside_sigv4s_limits_is_refused() {
        let (sink, _server) = fake_s3(vec![]).await;
        for bad in [Duration::ZERO, PRESIGN_MAX + Duration::from_secs(1)] {
            let e = sink.presign_put("uploads/a.csv", bad).await.unwrap_err().to_string();
            assert!(e.contains("between one second and seven days"), "{e}");
        }
        let url = sink.presign_put("uploads/a.csv", PRESIGN_MAX).await.unwrap();
        assert!(url.contains("X-Amz-Expires=604800"), "{url}");
        assert!(sink.presign_put("../a.csv", PRESIGN_MAX).await.is_err());
    }
}
