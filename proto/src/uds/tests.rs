use loona_hpack::{Decoder, Encoder};

use super::inbound::{AUTHORITY_FALLBACK, Inbound, InboundError};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SOCKET_PATH: &[u8] = b"/var/lib/kubelet/device-plugins/sriov_example.com_vf.sock";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = len[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn request(authority: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    [
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"http"),
        (b":path", b"/v1beta1.DevicePlugin/ListAndWatch"),
        (b":authority", authority),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
    ]
    .iter()
    .map(|(n, v)| (n.to_vec(), v.to_vec()))
    .collect()
}

fn encode(enc: &mut Encoder<'_>, fields: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    enc.encode(fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice())))
}

/// A parsed frame of the transcoder's output.
#[derive(Debug, PartialEq)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn frames(mut b: &[u8]) -> Vec<Frame> {
    assert!(b.starts_with(PREFACE), "output must start with the preface");
    b = &b[PREFACE.len()..];
    let mut out = Vec::new();
    while !b.is_empty() {
        let len = usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]);
        out.push(Frame {
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
            payload: b[9..9 + len].to_vec(),
        });
        b = &b[9 + len..];
    }
    out
}

/// Runs `input` through a transcoder in pieces of `step` bytes.
fn run(input: &[u8], step: usize) -> Result<Vec<u8>, InboundError> {
    let mut t = Inbound::new();
    let mut out = Vec::new();
    for piece in input.chunks(step) {
        t.push(piece)?;
        out.extend_from_slice(t.output());
        let n = t.output().len();
        t.consume(n);
    }
    Ok(out)
}

/// Decodes the header blocks of `out` the way h2 does: one decoder for the connection.
fn decoded_blocks(out: &[u8]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut dec = Decoder::new();
    let mut blocks = Vec::new();
    let mut block = Vec::new();
    for f in frames(out) {
        if f.kind == 0x1 || f.kind == 0x9 {
            let mut p = f.payload.as_slice();
            if f.kind == 0x1 && f.flags & 0x20 != 0 {
                p = &p[5..];
            }
            block.extend_from_slice(p);
            if f.flags & 0x4 != 0 {
                blocks.push(dec.decode(&block).unwrap());
                block.clear();
            }
        }
    }
    blocks
}

#[test]
fn a_socket_path_authority_becomes_localhost_and_nothing_else_changes() {
    // Two requests on one connection, encoded as grpc-go does: the first adds its fields to
    // the client's dynamic table, the second only refers to them (indices 62..=65).
    let lit = |idx: u8, v: &[u8]| [&[0x40 | idx, u8::try_from(v.len()).unwrap()][..], v].concat();
    let path = b"/v1beta1.DevicePlugin/ListAndWatch";
    let first = [
        &[0x83, 0x86][..],
        &lit(4, path),
        &lit(1, SOCKET_PATH),
        &lit(31, b"application/grpc"),
        &[0x40, 2, b't', b'e', 8],
        b"trailers",
    ]
    .concat();
    let second = [0x83, 0x86, 0xc1, 0xc0, 0xbf, 0xbe];
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x4, 0, 0, &[0, 4, 0, 0, 0xff, 0xff])); // SETTINGS
    input.extend(frame(0x1, 0x4, 1, &first));
    input.extend(frame(0x0, 0x1, 1, b"\0\0\0\0\0"));
    input.extend(frame(0x1, 0x4 | 0x1, 3, &second));
    for step in [1, 7, 4096] {
        let out = run(&input, step).unwrap();
        let fs = frames(&out);
        assert_eq!(fs.len(), 4, "step {step}");
        assert_eq!(fs[0].payload, [0, 4, 0, 0, 0xff, 0xff]);
        assert_eq!(
            (fs[2].kind, fs[2].flags, &fs[2].payload[..]),
            (0, 1, &b"\0\0\0\0\0"[..])
        );
        assert_eq!((fs[3].flags, fs[3].stream), (0x5, 3), "END_STREAM kept");
        let want = request(AUTHORITY_FALLBACK.as_bytes());
        assert_eq!(
            decoded_blocks(&out),
            vec![want.clone(), want],
            "step {step}"
        );
    }
}

#[test]
fn a_valid_authority_is_kept() {
    let mut input = PREFACE.to_vec();
    let fields = request(b"localhost:9808");
    input.extend(frame(0x1, 0x4, 1, &encode(&mut Encoder::new(), &fields)));
    assert_eq!(decoded_blocks(&run(&input, 3).unwrap()), vec![fields]);
}

#[test]
fn padding_priority_and_continuations_are_undone_and_large_blocks_split() {
    let mut fields = request(SOCKET_PATH);
    fields.push((b"x-big".to_vec(), vec![b'a'; 40_000]));
    let block = encode(&mut Encoder::new(), &fields);
    let (a, b) = block.split_at(100);
    let mut first = vec![3]; // pad length
    first.extend_from_slice(&[0x80, 0, 0, 1, 16]); // exclusive dependency on 1, weight 16
    first.extend_from_slice(a);
    first.extend_from_slice(&[0, 0, 0]);
    let mut input = PREFACE.to_vec();
    input.extend(frame(0x1, 0x8 | 0x20 | 0x1, 5, &first));
    input.extend(frame(0x9, 0x4, 5, b));
    let out = run(&input, 1000).unwrap();
    let fs = frames(&out);
    assert!(fs.len() >= 3, "40 KB of fields need continuations");
    assert!(
        fs.iter()
            .all(|f| f.payload.len() <= 16 * 1024 && f.stream == 5)
    );
    assert_eq!(
        fs[0].flags,
        0x20 | 0x1,
        "priority and END_STREAM kept, padding gone"
    );
    assert_eq!(fs[0].payload[..5], [0x80, 0, 0, 1, 16]);
    assert!(fs[1..].iter().all(|f| f.kind == 0x9));
    assert_eq!(fs.last().unwrap().flags, 0x4);
    fields[3].1 = AUTHORITY_FALLBACK.as_bytes().to_vec();
    assert_eq!(decoded_blocks(&out), vec![fields]);
}

#[test]
fn bytes_that_are_not_http2_pass_untouched() {
    let input = b"GET / HTTP/1.1\r\nHost: /a/b\r\n\r\n";
    assert_eq!(run(input, 2).unwrap(), input);
}

#[test]
fn broken_framing_and_hpack_are_errors() {
    let cont = [PREFACE, &frame(0x9, 0x4, 1, b"\x82")].concat();
    assert!(matches!(run(&cont, 5), Err(InboundError::Framing(_))));
    let interleaved = [PREFACE, &frame(0x1, 0, 1, b"\x82"), &frame(0x0, 0, 1, b"x")].concat();
    assert!(matches!(
        run(&interleaved, 5),
        Err(InboundError::Framing(_))
    ));
    let bad_index = [PREFACE, &frame(0x1, 0x4, 1, &[0xff, 0x7f])].concat();
    assert!(matches!(run(&bad_index, 5), Err(InboundError::Hpack(_))));
    let pad = [PREFACE, &frame(0x1, 0x4 | 0x8, 1, &[9, 0x82])].concat();
    assert!(matches!(run(&pad, 5), Err(InboundError::Framing(_))));
    let huge = [
        PREFACE,
        &frame(0x1, 0, 1, &vec![0; 1 << 20]),
        &frame(0x9, 0, 1, b"x"),
    ]
    .concat();
    assert!(matches!(
        run(&huge, 1 << 16),
        Err(InboundError::BlockTooLarge)
    ));
}
