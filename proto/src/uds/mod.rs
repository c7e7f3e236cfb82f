//! Serving gRPC on a Unix socket to every client, whatever `:authority` it sends.
//!
//! HTTP/2 needs an `:authority`, and over a Unix socket there is no host to name, so clients
//! improvise: grpc-go before 1.26's kubelets (and grpcurl, grpc-java, some grpc-python builds)
//! send the socket *path*, e.g. `/var/lib/kubelet/device-plugins/kubelet.sock`. `h2`, under
//! tonic, checks `:authority` against URI syntax before any service code runs and resets such a
//! stream with `PROTOCOL_ERROR`, and it has no switch to relax that. So a kubelet 1.20 registers
//! our plugin and then loses every ListAndWatch.
//!
//! [`LenientAuthority`] sits between the socket and h2 and rewrites only that one field: an
//! `:authority` that is not a valid URI authority becomes `localhost` (what kubelets since 1.26
//! send). Everything else reaches h2 byte for byte (frames other than header blocks are copied
//! as they arrive) or, for header blocks, field for field, so h2 still enforces the rest of
//! HTTP/2 itself. Header blocks are HPACK-compressed against a table the client and server
//! share, so the rewrite cannot patch bytes in place: [`inbound`] decodes every block with the
//! client's table and re-encodes it for h2 without using h2's dynamic table (see there). The
//! server-to-client direction is untouched. Only our Unix-socket servers use it: on TCP an
//! authority means something and stays h2's business.

mod inbound;
#[cfg(test)]
mod tests;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::{Stream, StreamExt, wrappers::UnixListenerStream};
use tonic::transport::server::Connected;

pub use inbound::AUTHORITY_FALLBACK;
use inbound::Inbound;

/// The connections accepted on `listener`, each wrapped in [`LenientAuthority`], ready for
/// `tonic::transport::Server::serve_with_incoming(_shutdown)`.
pub fn incoming(
    listener: UnixListener,
) -> impl Stream<Item = io::Result<LenientAuthority<UnixStream>>> + Send + 'static {
    UnixListenerStream::new(listener).map(|conn| conn.map(LenientAuthority::new))
}

/// A server-side connection whose client-to-server HTTP/2 stream has any `:authority` that is
/// not URI syntax replaced by [`AUTHORITY_FALLBACK`]. Writes pass straight through.
///
/// A client whose bytes cannot be parsed as HTTP/2 (bad framing, a bad HPACK block, a header
/// block over 1 MiB) gets a read error, which closes the connection: after such input the
/// shared compression state is lost anyway, and h2 would close it too. A client that does not
/// start with the HTTP/2 preface is passed through untouched, for h2 to refuse.
pub struct LenientAuthority<S> {
    inner: S,
    inbound: Inbound,
    chunk: Box<[u8]>,
    eof: bool,
}

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 16 * 1024;

impl<S> LenientAuthority<S> {
    /// Wraps a freshly accepted server-side connection (nothing read from it yet).
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            inbound: Inbound::new(),
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            eof: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LenientAuthority<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let ready = this.inbound.output();
            if !ready.is_empty() {
                let n = ready.len().min(buf.remaining());
                buf.put_slice(&ready[..n]);
                this.inbound.consume(n);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = ReadBuf::new(&mut this.chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut chunk) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if chunk.filled().is_empty() => this.eof = true,
                Poll::Ready(Ok(())) => this
                    .inbound
                    .push(chunk.filled())
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?,
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LenientAuthority<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for LenientAuthority<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}
