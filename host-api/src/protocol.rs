//! The version of the master↔agent frames. Two hosts tell each other theirs when their peer
//! stream opens; a master sends no action to a host whose version differs (a rolling upgrade
//! puts two versions in one pool), and the call that needed it fails with
//! `VM_HOST_INCOMPATIBLE_VERSION`.
//!
//! The test below hashes the shape of every type in the frames (each field and variant, by
//! name and type, as serde sees them): a change to any of them fails it until
//! `PROTOCOL_VERSION` is raised and the new hash recorded.

/// The version of the frames this crate declares.
pub const PROTOCOL_VERSION: u32 = 11;

#[cfg(test)]
mod tests {
    use serde_reflection::{Registry, Tracer, TracerConfig};
    use sha2::{Digest, Sha256};

    use super::PROTOCOL_VERSION;
    use crate::*;

    /// The version and the hash of its frames' shape, as last recorded.
    const RECORDED: (u32, &str) = (
        11,
        "443492394554383de43f3c279257f9d93f5a491f0bc3649bfdd1a048aa079b64",
    );

    /// The shape of every type the frames carry. Each enum is traced on its own so that all
    /// its variants are seen; an enum left out of this list fails the trace
    /// (`MissingVariants`), so a new one cannot slip past.
    fn shapes() -> Registry {
        let mut tracer = Tracer::new(TracerConfig::default());
        let traced = [
            tracer.trace_simple_type::<AfterCrash>().map(drop),
            tracer.trace_simple_type::<AfterShutdown>().map(drop),
            tracer.trace_simple_type::<DomainState>().map(drop),
            tracer.trace_simple_type::<GuestEvent>().map(drop),
            tracer.trace_simple_type::<PowerState>().map(drop),
            tracer.trace_simple_type::<StorageOperation>().map(drop),
            tracer.trace_simple_type::<VbdKind>().map(drop),
            tracer.trace_simple_type::<ImageFormat>().map(drop),
            tracer.trace_simple_type::<VmAction>().map(drop),
            tracer.trace_simple_type::<StorageAction>().map(drop),
            tracer.trace_simple_type::<NetworkAction>().map(drop),
            tracer.trace_simple_type::<HostAction>().map(drop),
            tracer.trace_simple_type::<ActionResult>().map(drop),
            tracer.trace_simple_type::<AgentFailure>().map(drop),
            tracer.trace_simple_type::<AgentReport>().map(drop),
            tracer.trace_simple_type::<HostHealth>().map(drop),
        ];
        for result in traced {
            result.expect("a frame type traces");
        }
        tracer
            .registry()
            .expect("every enum of the frames is traced")
    }

    /// Any change to the frames between a master and an agent changes this hash: raise
    /// `PROTOCOL_VERSION` and record both.
    #[test]
    fn the_frames_change_only_with_the_protocol_version() {
        let shapes = serde_json::to_vec(&shapes()).expect("a registry encodes");
        let hash: String = Sha256::digest(shapes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            (PROTOCOL_VERSION, hash.as_str()),
            RECORDED,
            "the master↔agent frames changed: raise PROTOCOL_VERSION and record its hash"
        );
    }
}
