//! Which network addresses the service may send a request to. Platforms
//! are on the public internet; a host that comes from user input (a store
//! URL, a shop domain, a deployment-defined platform, a next-page link)
//! must never lead a request into the deployment's own network, its cloud's
//! metadata service, or the machine itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether a request may go to `ip`. Loopback only when the deployment
/// allows it (the local stack and the tests, for their sandboxes); every
/// other internal, special or reserved range never.
pub fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback),
        IpAddr::V6(v6) => v6_allowed(v6, allow_loopback),
    }
}

fn v4_allowed(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        return allow_loopback;
    }
    !(a == 0                                   // "this network", unspecified
        || a == 10                             // private
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 169 && b == 254)              // link-local, cloud metadata
        || (a == 172 && (16..32).contains(&b)) // private
        || (a == 192 && b == 0 && c == 0)      // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)      // documentation
        || (a == 192 && b == 88 && c == 99)    // 6to4 relay anycast
        || (a == 192 && b == 168)              // private
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || (a == 198 && b == 51 && c == 100)   // documentation
        || (a == 203 && b == 0 && c == 113)    // documentation
        || a >= 224) // multicast, reserved, broadcast
}

fn v6_allowed(ip: Ipv6Addr, allow_loopback: bool) -> bool {
    if ip.is_loopback() {
        return allow_loopback;
    }
    // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d),
    // NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:AABB:CCDD::) all reach an IPv4
    // address: judge that one.
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_allowed(v4, allow_loopback);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        return !ip.is_unspecified()
            && v4_allowed(Ipv4Addr::from(ip.octets()[12..16].try_into().unwrap_or([0; 4])), false);
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        let o = ip.octets();
        return v4_allowed(Ipv4Addr::new(o[12], o[13], o[14], o[15]), false);
    }
    if s[0] == 0x2002 {
        let o = ip.octets();
        return v4_allowed(Ipv4Addr::new(o[2], o[3], o[4], o[5]), false);
    }
    !((s[0] & 0xfe00) == 0xfc00          // unique local (fd00:ec2::254 metadata too)
        || (s[0] & 0xffc0) == 0xfe80     // link-local
        || (s[0] & 0xffc0) == 0xfec0     // site-local (deprecated)
        || (s[0] & 0xff00) == 0xff00     // multicast
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0, 0, 0])) // discard-only
}

/// The address a URL's host names when it is an address (every textual
/// form a URL parser accepts: `2130706433`, `0x7f.1`, `127.1`,
/// `0177.0.0.1`, `[::ffff:127.0.0.1]`), `None` for a name.
pub fn literal_address(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(url: &str, loopback: bool) -> bool {
        let url = url::Url::parse(url).unwrap();
        address_allowed(literal_address(&url).expect("an address"), loopback)
    }

    #[test]
    fn internal_addresses_are_refused_in_every_textual_form() {
        for url in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://127.1/",
            "https://0177.0.0.1/",
            "https://0x7f000001/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:7f00:1]/",
            "https://169.254.169.254/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[fd00:ec2::254]/",
            "https://10.0.0.1/",
            "https://172.16.5.4/",
            "https://172.31.255.255/",
            "https://192.168.1.1/",
            "https://100.64.0.1/",
            "https://100.127.255.255/",
            "https://0.0.0.0/",
            "https://[::]/",
            "https://224.0.0.1/",
            "https://255.255.255.255/",
            "https://[ff02::1]/",
            "https://[fe80::1]/",
            "https://[fc00::1]/",
            "https://[::10.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:a9fe:a9fe::1]/",
            "https://[2002:7f00:1::]/",
        ] {
            assert!(!allowed(url, false), "{url} must be refused");
            // Loopback may be allowed for sandboxes, nothing else is.
            let loopback = ["127.", "2130706433", "0x7f", "0177", "[::1]", "[::ffff:127", "[::ffff:7f00"];
            if !loopback.iter().any(|l| url.contains(l)) {
                assert!(!allowed(url, true), "{url} must be refused even with loopback allowed");
            }
        }
    }

    #[test]
    fn public_addresses_are_allowed_and_loopback_only_by_setting() {
        for url in [
            "https://93.184.216.34/",
            "https://8.8.8.8/",
            "https://[2606:4700::1111]/",
            "https://172.32.0.1/",
            "https://100.128.0.1/",
        ] {
            assert!(allowed(url, false), "{url}");
        }
        assert!(allowed("https://127.0.0.1/", true));
        assert!(allowed("https://[::1]/", true));
        assert!(!allowed("https://127.0.0.1/", false));
        assert_eq!(literal_address(&url::Url::parse("https://shop.example.com/").unwrap()), None);
    }
}
