//! How a host reaches an SR: the host to ask about it (one with its PBD attached) and the
//! `SrSpec` that host's storage driver needs, read from that PBD's `device_config`.

use api_spec::errors;
use host_api::SrSpec;

use crate::error::Error;
use crate::vm::operations::Overlay;

/// The host to act on `sr` on and what its driver needs: the first attached PBD whose host is
/// live, else the first attached PBD (its host's agent then answers `HOST_OFFLINE`).
/// `HANDLE_INVALID` for an SR that does not exist, `SR_HAS_NO_PBDS [sr]` when no PBD of the
/// SR is attached.
pub(crate) fn where_attached(view: &Overlay, sr: &str) -> Result<(String, SrSpec), Error> {
    if !view.exists("SR", sr) {
        return Err(errors::handle_invalid("SR", sr).into());
    }
    let pbd = attached_pbd(view, sr).ok_or_else(|| errors::sr_has_no_pbds(sr))?;
    Ok((
        view.str("PBD", &pbd, "host").to_owned(),
        spec(view, sr, Some(&pbd)),
    ))
}

/// `sr` as the driver of a host where it is attached finds it (as `where_attached` picks
/// the host); with no attached PBD, its uuid and type without a location.
pub(crate) fn sr_spec(view: &Overlay, sr: &str) -> SrSpec {
    spec(view, sr, attached_pbd(view, sr).as_deref())
}

/// The attached PBD of `sr` to use: one whose host is live first.
fn attached_pbd(view: &Overlay, sr: &str) -> Option<String> {
    let attached: Vec<String> = view
        .children("PBD", "SR", sr)
        .into_iter()
        .filter(|pbd| view.bool("PBD", pbd, "currently_attached"))
        .collect();
    let is_live = |pbd: &String| {
        let host = view.str("PBD", pbd, "host");
        view.bool("host_metrics", view.str("host", host, "metrics"), "live")
    };
    attached
        .iter()
        .find(|pbd| is_live(pbd))
        .or(attached.first())
        .cloned()
}

/// The spec of `sr` seen through `pbd`: its `device_config` `location` (or `path`).
pub(crate) fn spec(view: &Overlay, sr: &str, pbd: Option<&str>) -> SrSpec {
    let location = pbd
        .map(|pbd| {
            let config = view.string_map("PBD", pbd, "device_config");
            config
                .get("location")
                .or(config.get("path"))
                .cloned()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    SrSpec {
        uuid: view.str("SR", sr, "uuid").to_owned(),
        sr_type: view.str("SR", sr, "type").to_owned(),
        location,
    }
}
