use std::io;
use std::path::PathBuf;

use tonic::{Code, Status};

use super::*;

fn attach(step: Step, errno: Option<i32>) -> AttachError {
    AttachError {
        step,
        cause: "the kernel said no".into(),
        errno,
        rollback: Vec::new(),
    }
}

fn netns_missing() -> NetnsError {
    NetnsError::Io {
        path: PathBuf::from("/run/netns/gone"),
        op: "open",
        source: io::Error::from_raw_os_error(libc::ENOENT),
    }
}

fn netlink(errno: i32) -> NetlinkError {
    NetlinkError::Kernel {
        op: "set link",
        target: "eth9".into(),
        errno,
        message: "refused".into(),
    }
}

#[test]
fn agent_status_codes_map_by_grpc_code() {
    let cases = [
        (Code::InvalidArgument, code::INVALID_CONFIG),
        (Code::NotFound, code::INVALID_CONFIG),
        (Code::FailedPrecondition, code::INVALID_CONFIG),
        (Code::Unavailable, code::TRY_AGAIN),
        (Code::ResourceExhausted, code::TRY_AGAIN),
        (Code::AlreadyExists, code::TRY_AGAIN),
        (Code::Aborted, code::TRY_AGAIN),
        (Code::DeadlineExceeded, code::TRY_AGAIN),
        (Code::Cancelled, code::TRY_AGAIN),
        (Code::Unknown, code::TRY_AGAIN),
        (Code::Internal, code::INTERNAL),
        (Code::PermissionDenied, code::INTERNAL),
        (Code::Unimplemented, code::INTERNAL),
    ];
    for (grpc, want) in cases {
        let e = CniError::from(Status::new(grpc, "why"));
        assert_eq!(e.code, want, "{grpc:?}");
        assert_eq!(e.msg, "why", "{grpc:?}");
    }
}

#[test]
fn the_code_never_comes_from_the_message() {
    // Messages that name other failures do not move the code: only the gRPC code counts.
    for text in [
        "invalid argument",
        "not found",
        "unavailable: try again",
        "already exists",
    ] {
        assert_eq!(
            CniError::from(Status::internal(text)).code,
            code::INTERNAL,
            "{text}"
        );
        assert_eq!(
            CniError::from(Status::unavailable(text)).code,
            code::TRY_AGAIN,
            "{text}"
        );
    }
    let mut e = attach(Step::Route, None);
    e.cause = "CNI_IFNAME already exists (EINVAL)".into();
    assert_eq!(attach_code(&e), code::IO_FAILURE);
}

#[test]
fn context_prefixes_the_message_and_keeps_the_code() {
    let e = CniError::from(Status::unavailable("pool p has no free VF"))
        .context("the agent refused the attachment");
    assert_eq!(e.code, code::TRY_AGAIN);
    assert_eq!(
        e.msg,
        "the agent refused the attachment: pool p has no free VF"
    );
}

#[test]
fn attach_steps_map_by_step_and_errno() {
    let cases = [
        (Step::IfnameFree, None, code::INVALID_ENV),
        // The name check wins over the errno: retrying with the same name cannot help.
        (Step::IfnameFree, Some(libc::EINVAL), code::INVALID_ENV),
        (Step::VfVlan, Some(libc::EOPNOTSUPP), code::INVALID_CONFIG),
        (Step::VfRate, Some(libc::EINVAL), code::INVALID_CONFIG),
        (
            Step::VfVlan,
            Some(libc::EPROTONOSUPPORT),
            code::INVALID_CONFIG,
        ),
        (Step::NetdevMtu, Some(libc::ERANGE), code::INVALID_CONFIG),
        (Step::MoveToPod, Some(libc::EBUSY), code::IO_FAILURE),
        (Step::Route, Some(libc::ENETUNREACH), code::IO_FAILURE),
        (Step::ReadBack, None, code::IO_FAILURE),
    ];
    for (step, errno, want) in cases {
        let e = CniError::from(Failure::Attach {
            vf: "0000:00:01.1".into(),
            pf: "ens1f0".into(),
            source: attach(step, errno),
        });
        assert_eq!(e.code, want, "{step} {errno:?}");
        assert!(
            e.msg.starts_with("VF 0000:00:01.1 on PF ens1f0: "),
            "{}",
            e.msg
        );
    }
}

#[test]
fn namespaces_netlink_and_records() {
    let e = CniError::from(Failure::Netns {
        path: "/run/netns/gone".into(),
        source: netns_missing(),
    });
    assert_eq!(e.code, code::INVALID_ENV);
    assert!(
        e.msg.starts_with("CNI_NETNS /run/netns/gone: "),
        "{}",
        e.msg
    );
    assert_eq!(
        CniError::from(Failure::PodNetnsGone(netns_missing())).code,
        code::UNKNOWN_CONTAINER
    );
    let e = CniError::from(netlink(libc::EPERM));
    assert_eq!(e.code, code::IO_FAILURE);
    assert!(e.msg.starts_with("netlink: "), "{}", e.msg);
    // The same netlink failure during DEL's restore keeps the record: try again.
    assert_eq!(
        CniError::from(Failure::RestoreUnreachable(netlink(libc::EPERM))).code,
        code::TRY_AGAIN
    );
    let e = CniError::from(ConvertError {
        field: "vf_pci",
        msg: "empty".into(),
    });
    assert_eq!(e.code, code::INTERNAL);
    assert!(e.msg.starts_with("agent record: "), "{}", e.msg);
    assert_eq!(
        CniError::from(Failure::Runtime(io::Error::other("epoll"))).code,
        code::INTERNAL
    );
    assert_eq!(
        CniError::from(Failure::IpamExec {
            plugin: "host-local".into(),
            source: io::Error::from_raw_os_error(libc::ENOEXEC),
        })
        .code,
        code::IO_FAILURE
    );
}

#[test]
fn agent_unreachable_and_restore_are_try_again_with_details() {
    let e = CniError::from(Failure::AgentUnreachable {
        socket: "/run/sriov/agent.sock".into(),
        cause: "connection refused".into(),
    });
    assert_eq!(e.code, code::TRY_AGAIN);
    assert_eq!(e.details, "connection refused");
    let e = CniError::from(Failure::AgentSocketDenied {
        socket: "/run/sriov/agent.sock".into(),
    });
    assert_eq!(e.code, code::TRY_AGAIN);
    let e = CniError::from(Failure::Restore {
        vf: "0000:00:01.1".into(),
        pf: "ens1f0".into(),
        errs: vec![attach(Step::VfVlan, None), attach(Step::Rename, None)],
    });
    assert_eq!(e.code, code::TRY_AGAIN);
    assert_eq!(e.msg, "restoring VF 0000:00:01.1 on PF ens1f0 failed");
    assert_eq!(
        e.details,
        "set VF VLAN: the kernel said no; rename the VF netdev back: the kernel said no"
    );
}
