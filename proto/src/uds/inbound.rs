//! The client-to-server half of an HTTP/2 connection, re-emitted with every non-URI
//! `:authority` replaced. Pure bytes in, bytes out, so it is tested without sockets.
//!
//! Framing (RFC 9113 §4.1): a 9-byte header (24-bit length, type, flags, 31-bit stream id),
//! then the payload. Frames other than HEADERS/CONTINUATION are copied as they arrive. A header
//! block (one HEADERS and any CONTINUATIONs, §6.10) is collected whole, padding dropped,
//! decoded with the client's HPACK table ([`Decoder`], fed every block in order, so it stays
//! in step with the client's encoder), fixed, and re-encoded with an [`Encoder`] whose dynamic
//! table is empty and stays empty (size 0). So what h2 decodes never refers to h2's own
//! dynamic table, and the two tables h2 shares with "its" client can never disagree, although
//! the client's table and h2's now differ. Entries the re-encoded block asks h2 to add are never
//! used; h2's table only bounds them.
//!
//! h2 still checks every field of every block. What it can no longer see is how the client
//! manages its table: our decoder enforces the size limit of those updates, but not that they
//! come first in a block (RFC 7541 §4.2), which changes nothing h2 would act on.

use loona_hpack::{Decoder, Encoder};
use tonic::codegen::http::uri::Authority;

/// What a non-URI `:authority` is replaced with: the value kubelets since 1.26 send over
/// Unix sockets.
pub const AUTHORITY_FALLBACK: &str = "localhost";

/// The client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEAD: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame payload we emit: the initial SETTINGS_MAX_FRAME_SIZE, which a server may
/// raise but never lower, so it is always allowed.
const MAX_FRAME: usize = 16 * 1024;
/// Largest header block (all its fragments) we collect. gRPC requests carry well under 1 KiB.
const MAX_BLOCK: usize = 1024 * 1024;
/// h2's SETTINGS_HEADER_TABLE_SIZE (the protocol's initial 4096; tonic does not change it):
/// the client's encoder may not grow its table, and so ours, past it.
const CLIENT_TABLE_MAX: usize = 4096;

/// Why the client's bytes could not be carried over. Each ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// CONTINUATION without an open block, or another frame inside an open block.
    #[error("HTTP/2 framing: {0}")]
    Framing(&'static str),
    /// The header block is larger than [`MAX_BLOCK`].
    #[error("HTTP/2 header block larger than {MAX_BLOCK} bytes")]
    BlockTooLarge,
    /// The header block is not valid HPACK for the client's table.
    #[error("HTTP/2 header block: HPACK: {0}")]
    Hpack(#[from] loona_hpack::decoder::DecoderError),
}

enum Phase {
    /// Waiting for the rest of the preface.
    Preface,
    /// Waiting for a frame header.
    Head,
    /// Copying this many more payload bytes of a frame that is not part of a header block.
    Copy(usize),
    /// Waiting for the payload of a HEADERS or CONTINUATION frame.
    BlockPayload(FrameHead),
    /// Not HTTP/2: everything passes through for h2 to refuse.
    Raw,
}

#[derive(Clone, Copy)]
struct FrameHead {
    len: usize,
    kind: u8,
    flags: u8,
    stream: u32,
}

impl FrameHead {
    fn parse(b: &[u8]) -> Self {
        Self {
            len: usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        let len = u32::try_from(self.len).unwrap_or(u32::MAX).to_be_bytes();
        out.extend_from_slice(&len[1..]);
        out.push(self.kind);
        out.push(self.flags);
        out.extend_from_slice(&self.stream.to_be_bytes());
    }
}

/// A header block being collected.
struct Block {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    fragment: Vec<u8>,
}

/// The transcoder of one connection's client-to-server bytes.
pub(super) struct Inbound {
    phase: Phase,
    /// Bytes of the unit being waited for (preface, frame header, header-frame payload).
    pending: Vec<u8>,
    block: Option<Block>,
    out: Vec<u8>,
    out_pos: usize,
    decoder: Decoder<'static>,
    encoder: Encoder<'static>,
}

impl Inbound {
    pub(super) fn new() -> Self {
        let mut decoder = Decoder::new();
        decoder.set_max_allowed_table_size(CLIENT_TABLE_MAX);
        let mut encoder = Encoder::new();
        encoder.set_max_table_size(0);
        Self {
            phase: Phase::Preface,
            pending: Vec::new(),
            block: None,
            out: Vec::new(),
            out_pos: 0,
            decoder,
            encoder,
        }
    }

    /// Bytes ready for h2.
    pub(super) fn output(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// Marks the first `n` bytes of [`Inbound::output`] as handed to h2.
    pub(super) fn consume(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Takes the next bytes the client sent.
    pub(super) fn push(&mut self, mut input: &[u8]) -> Result<(), InboundError> {
        while !input.is_empty() {
            match self.phase {
                Phase::Raw => {
                    self.out.extend_from_slice(input);
                    return Ok(());
                }
                Phase::Copy(left) => {
                    let n = left.min(input.len());
                    self.out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.phase = if n == left {
                        Phase::Head
                    } else {
                        Phase::Copy(left - n)
                    };
                }
                Phase::Preface => {
                    let Some(rest) = self.fill(&mut input, PREFACE.len()) else {
                        if !PREFACE.starts_with(&self.pending) {
                            self.pass_raw();
                        }
                        continue;
                    };
                    if rest == PREFACE {
                        self.out.extend_from_slice(PREFACE);
                        self.phase = Phase::Head;
                    } else {
                        self.pending = rest;
                        self.pass_raw();
                    }
                }
                Phase::Head => {
                    let Some(raw) = self.fill(&mut input, FRAME_HEAD) else {
                        continue;
                    };
                    self.on_head(FrameHead::parse(&raw), &raw)?;
                }
                Phase::BlockPayload(head) => {
                    let Some(payload) = self.fill(&mut input, head.len) else {
                        continue;
                    };
                    self.phase = Phase::Head;
                    self.on_block_frame(head, payload)?;
                }
            }
        }
        Ok(())
    }

    /// Moves bytes from `input` into `pending` until it holds `want`; then returns them.
    fn fill(&mut self, input: &mut &[u8], want: usize) -> Option<Vec<u8>> {
        let n = want.saturating_sub(self.pending.len()).min(input.len());
        self.pending.extend_from_slice(&input[..n]);
        *input = &input[n..];
        (self.pending.len() == want).then(|| std::mem::take(&mut self.pending))
    }

    fn pass_raw(&mut self) {
        self.out.append(&mut self.pending);
        self.phase = Phase::Raw;
    }

    fn on_head(&mut self, head: FrameHead, raw: &[u8]) -> Result<(), InboundError> {
        let in_block = self.block.as_ref().map(|b| b.stream);
        match (head.kind, in_block) {
            (HEADERS, None) => {}
            (CONTINUATION, Some(stream)) if stream == head.stream => {}
            (CONTINUATION, _) => {
                return Err(InboundError::Framing(
                    "CONTINUATION outside its header block",
                ));
            }
            (_, Some(_)) => return Err(InboundError::Framing("frame inside a header block")),
            (_, None) => {
                self.out.extend_from_slice(raw);
                self.phase = if head.len == 0 {
                    Phase::Head
                } else {
                    Phase::Copy(head.len)
                };
                return Ok(());
            }
        }
        let collected = self.block.as_ref().map_or(0, |b| b.fragment.len());
        if collected + head.len > MAX_BLOCK {
            return Err(InboundError::BlockTooLarge);
        }
        self.phase = Phase::BlockPayload(head);
        if head.len == 0 {
            self.phase = Phase::Head;
            self.on_block_frame(head, Vec::new())?;
        }
        Ok(())
    }

    fn on_block_frame(&mut self, head: FrameHead, payload: Vec<u8>) -> Result<(), InboundError> {
        let mut body = payload.as_slice();
        if head.kind == HEADERS {
            if head.flags & PADDED != 0 {
                let (&pad, rest) = body
                    .split_first()
                    .ok_or(InboundError::Framing("PADDED HEADERS without a pad length"))?;
                let keep =
                    rest.len()
                        .checked_sub(usize::from(pad))
                        .ok_or(InboundError::Framing(
                            "HEADERS padding longer than the frame",
                        ))?;
                body = &rest[..keep];
            }
            let mut priority = None;
            if head.flags & PRIORITY != 0 {
                let (p, rest) = body.split_first_chunk::<5>().ok_or(InboundError::Framing(
                    "PRIORITY HEADERS shorter than 5 bytes",
                ))?;
                priority = Some(*p);
                body = rest;
            }
            self.block = Some(Block {
                stream: head.stream,
                end_stream: head.flags & END_STREAM != 0,
                priority,
                fragment: Vec::new(),
            });
        }
        let Some(block) = self.block.as_mut() else {
            return Err(InboundError::Framing(
                "CONTINUATION outside its header block",
            ));
        };
        block.fragment.extend_from_slice(body);
        if head.flags & END_HEADERS != 0
            && let Some(block) = self.block.take()
        {
            self.reencode(block)?;
        }
        Ok(())
    }

    fn reencode(&mut self, block: Block) -> Result<(), InboundError> {
        let mut fields = self.decoder.decode(&block.fragment)?;
        for (name, value) in &mut fields {
            if name.as_slice() == b":authority" && Authority::try_from(value.as_slice()).is_err() {
                *value = AUTHORITY_FALLBACK.as_bytes().to_vec();
            }
        }
        let encoded = self
            .encoder
            .encode(fields.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        self.emit_block(&block, &encoded);
        Ok(())
    }

    /// Writes `encoded` as one HEADERS frame and as many CONTINUATIONs as [`MAX_FRAME`] needs.
    fn emit_block(&mut self, block: &Block, encoded: &[u8]) {
        let prio_len = block.priority.map_or(0, |p| p.len());
        let first_len = encoded.len().min(MAX_FRAME - prio_len);
        let (first, mut rest) = encoded.split_at(first_len);
        let mut flags = 0;
        if block.end_stream {
            flags |= END_STREAM;
        }
        if block.priority.is_some() {
            flags |= PRIORITY;
        }
        if rest.is_empty() {
            flags |= END_HEADERS;
        }
        let head = FrameHead {
            len: prio_len + first.len(),
            kind: HEADERS,
            flags,
            stream: block.stream,
        };
        head.write(&mut self.out);
        if let Some(p) = block.priority {
            self.out.extend_from_slice(&p);
        }
        self.out.extend_from_slice(first);
        while !rest.is_empty() {
            let (part, tail) = rest.split_at(rest.len().min(MAX_FRAME));
            rest = tail;
            let head = FrameHead {
                len: part.len(),
                kind: CONTINUATION,
                flags: if rest.is_empty() { END_HEADERS } else { 0 },
                stream: block.stream,
            };
            head.write(&mut self.out);
            self.out.extend_from_slice(part);
        }
    }
}
