//! Reading what a grant reaches from the platform's answer to the entry's
//! discovery request.

use crate::catalog::DiscoverySpec;
use crate::domain::SubAccount;

/// The sub-accounts in a discovery answer (`None`: no list where the entry
/// says).
pub fn sub_accounts(spec: &DiscoverySpec, doc: &serde_json::Value) -> Option<Vec<SubAccount>> {
    let list = doc.pointer(&spec.list_pointer)?.as_array()?;
    Some(
        list.iter()
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
                })
            })
            .collect(),
    )
}
