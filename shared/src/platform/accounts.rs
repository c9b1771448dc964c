//! Reading what a grant reaches from the platform's answer to the entry's
//! discovery request.

use std::collections::BTreeMap;

use crate::catalog::{DiscoverySpec, PlatformEntry};
use crate::domain::error::Error;
use crate::domain::SubAccount;

/// The first page's URL of the discovery request: its path, the query its
/// credentials fill (TikTok's app id and secret) and the page size asked.
pub fn first_url(
    entry: &PlatformEntry,
    spec: &DiscoverySpec,
    vars: &BTreeMap<String, String>,
    creds: &super::Credentials,
) -> Result<url::Url, Error> {
    let mut url =
        super::with_query_templates(&spec.credential_query, super::api_url(entry, &spec.path, vars)?, vars, creds)?;
    if let (Some(param), Some(size)) = (&spec.page_size_param, spec.page_size) {
        url.query_pairs_mut().append_pair(param, &size.to_string());
    }
    Ok(url)
}

/// The sub-accounts in a discovery answer (`None`: no list where the entry
/// says).
pub fn sub_accounts(spec: &DiscoverySpec, doc: &serde_json::Value) -> Option<Vec<SubAccount>> {
    // The list must be there (an answer without it is no answer).
    let head = spec.list_pointer.split("/*").next().unwrap_or_default();
    if !head.is_empty() {
        doc.pointer(head)?;
    } else if spec.list_pointer.is_empty() {
        doc.as_array()?;
    }
    let list = super::reports::rows(doc, &spec.list_pointer);
    Some(
        list.iter()
            .map(|row| row.value)
            .filter_map(|item| {
                let id = if spec.id_pointer.is_empty() {
                    super::pointer_str(&serde_json::json!({"v": item}), "/v")
                } else {
                    super::pointer_str(item, &spec.id_pointer)
                }?;
                let at = |p: &Option<String>| p.as_deref().and_then(|p| super::pointer_str(item, p));
                Some(SubAccount {
                    id,
                    name: at(&spec.name_pointer),
                    currency: at(&spec.currency_pointer),
                    time_zone: at(&spec.time_zone_pointer),
                    params: spec
                        .params
                        .iter()
                        .filter_map(|(name, p)| Some((name.clone(), super::pointer_str(item, p)?)))
                        .collect(),
                })
            })
            .collect(),
    )
}
