//! The pieces of a file's body (its bytes, and multipart delimiters
//! between them): read whole for a small body, or sent after the head,
//! by `sendfile` where the kernel can, through a buffer where it cannot.

use super::send::Went;
use crate::http::conn::{write_all_vectored_counting, ClientStream};
use crate::pace::{Paced, Pacing};
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

/// Why the pieces of a file could not be read whole before they were
/// sent.
#[derive(Debug)]
pub(super) enum Unread {
    /// The file ended `read` bytes into what was to be read of it.
    Short {
        read: u64,
        wanted: u64,
    },
    Failed(io::Error),
}

/// A piece of a body sent from a file.
pub(super) enum Piece<'a> {
    /// Bytes at hand: a multipart delimiter and its part's fields.
    Bytes(&'a [u8]),
    /// Bytes `start..start + len` of the file.
    File(u64, u64),
}

impl Piece<'_> {
    fn len(&self) -> u64 {
        match *self {
            Piece::Bytes(bytes) => bytes.len() as u64,
            Piece::File(_, len) => len,
        }
    }
}

/// The pieces' bytes, the file's read whole, or why they could not be
/// (a file cut shorter since it was opened, a read error).
pub(super) fn read_pieces(file: &File, pieces: &[Piece]) -> Result<Vec<u8>, Unread> {
    let too_large = || Unread::Failed(io::ErrorKind::OutOfMemory.into());
    let total = pieces.iter().map(Piece::len).sum::<u64>();
    let mut body = Vec::with_capacity(usize::try_from(total).map_err(|_| too_large())?);
    for piece in pieces {
        match *piece {
            Piece::Bytes(bytes) => body.extend_from_slice(bytes),
            Piece::File(start, len) => {
                let at = body.len();
                body.resize(at + usize::try_from(len).map_err(|_| too_large())?, 0);
                let mut read = 0;
                while read < body.len() - at {
                    match file.read_at(&mut body[at + read..], start + read as u64) {
                        Ok(0) => {
                            return Err(Unread::Short {
                                read: read as u64,
                                wanted: len,
                            })
                        }
                        Ok(n) => read += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(Unread::Failed(e)),
                    }
                }
            }
        }
    }
    Ok(body)
}

/// Sends `head`, then the pieces of the file: from the page cache with
/// `sendfile` where it can (`io::copy` does not use it from a file to a
/// socket), through a buffer where it cannot. Returns the body bytes that
/// went out, and how the sending ended: short of the whole (a client
/// gone, or a file cut shorter since it was opened), the connection must
/// close, or the client would wait for the rest.
pub(super) fn send_large(
    stream: &ClientStream,
    head: &[u8],
    (file, pieces): (&File, &[Piece]),
    pacing: Pacing,
) -> (u64, Went) {
    match stream {
        ClientStream::Tcp(tcp) if pacing.is_off() => sendfile_pieces(tcp, head, file, pieces),
        // The kernel does not encrypt, nor send at a pace: over TLS, or
        // under `limit_rate`, the file goes through a buffer.
        _ => {
            let mut out = Paced::new(stream, pacing);
            if let Err(e) = out.write_all(head) {
                return (0, Went::of_client(&e));
            }
            copy_pieces(&mut out, file, pieces)
        }
    }
}

/// Sends `head` and the pieces to a plain TCP client, the file's with
/// `sendfile`; returns the body bytes that went out, and how it ended.
fn sendfile_pieces(tcp: &TcpStream, head: &[u8], file: &File, pieces: &[Piece]) -> (u64, Went) {
    if let (_, went @ (Went::ClientGone | Went::ClientSlow)) = send_more(tcp, head) {
        return (0, went);
    }
    let mut sent = 0;
    for (i, piece) in pieces.iter().enumerate() {
        let (went, whole) = match *piece {
            // The last piece is the closing delimiter: nothing follows it
            // to take it along.
            Piece::Bytes(bytes) if i + 1 == pieces.len() => {
                let (went, result) =
                    write_all_vectored_counting(&mut &*tcp, &mut [IoSlice::new(bytes)]);
                (went as u64, Went::of_write(&result))
            }
            Piece::Bytes(bytes) => {
                let (went, whole) = send_more(tcp, bytes);
                (went as u64, whole)
            }
            Piece::File(start, len) => sendfile_part(tcp, file, start, len),
        };
        sent += went;
        if whole != Went::Whole {
            return (sent, whole);
        }
    }
    (sent, Went::Whole)
}

/// Sends bytes `start..start + len` of the file with `sendfile`; returns
/// how many went out, and how it ended.
fn sendfile_part(tcp: &TcpStream, file: &File, start: u64, len: u64) -> (u64, Went) {
    let (Ok(first), Some(end)) = (libc::off_t::try_from(start), start.checked_add(len)) else {
        return (0, Went::Unreadable(libc::EOVERFLOW));
    };
    let mut offset = first;
    let ended;
    loop {
        let done = u64::try_from(offset).unwrap_or(end);
        if done >= end {
            ended = Went::Whole;
            break;
        }
        // At most 1 GiB a call: Linux sends no more than about 2 GiB at once.
        let count = (end - done).min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the call (borrowed from
        // `tcp` and `file`), and `offset` is a valid `off_t` that the
        // kernel advances by what it sent.
        let n = unsafe { libc::sendfile(tcp.as_raw_fd(), file.as_raw_fd(), &mut offset, count) };
        match n {
            // The file ended before its length: cut since it was opened.
            0 => {
                ended = Went::FileEnded;
                break;
            }
            n if n > 0 => {}
            _ => match io::Error::last_os_error().raw_os_error() {
                // A signal: again.
                Some(libc::EINTR) => {}
                // A file system `sendfile` cannot read from: copied.
                Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) if offset == first => {
                    return copy_part(tcp, file, (start, len), &mut copy_buffer());
                }
                // The send timeout (`EAGAIN` on a socket with
                // `SO_SNDTIMEO`), a file that cannot be read, a client
                // gone: the end.
                error => {
                    ended = match error {
                        Some(libc::EAGAIN) => Went::ClientSlow,
                        Some(libc::EIO) => Went::Unreadable(libc::EIO),
                        _ => Went::ClientGone,
                    };
                    break;
                }
            },
        }
    }
    let sent = u64::try_from(offset).map_or(0, |at| at.saturating_sub(start));
    (sent, ended)
}

/// Writes the pieces through a buffer, where `sendfile` cannot take
/// them (over TLS, or at a rate); returns the bytes that went out, and
/// how it ended.
fn copy_pieces(mut out: impl Write, file: &File, pieces: &[Piece]) -> (u64, Went) {
    let mut buffer = copy_buffer();
    let mut sent = 0;
    for piece in pieces {
        let (went, whole) = match *piece {
            Piece::Bytes(bytes) => {
                let (went, result) =
                    write_all_vectored_counting(&mut out, &mut [IoSlice::new(bytes)]);
                (went as u64, Went::of_write(&result))
            }
            Piece::File(start, len) => copy_part(&mut out, file, (start, len), &mut buffer),
        };
        sent += went;
        if whole != Went::Whole {
            return (sent, whole);
        }
    }
    (sent, Went::Whole)
}

fn copy_buffer() -> Vec<u8> {
    vec![0; 64 * 1024]
}

/// Bytes `start..start + len` of the file written through `buffer`;
/// returns how many went out, and how it ended.
fn copy_part(
    mut stream: impl Write,
    file: &File,
    (start, len): (u64, u64),
    buffer: &mut [u8],
) -> (u64, Went) {
    let mut sent = 0;
    while sent < len {
        let want = (len - sent).min(buffer.len() as u64) as usize;
        let read = match file.read_at(&mut buffer[..want], start + sent) {
            Ok(0) => return (sent, Went::FileEnded),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A read error (EIO) ends the answer short: told by the
            // log's `PD`.
            Err(e) => {
                return (
                    sent,
                    Went::Unreadable(e.raw_os_error().unwrap_or(libc::EIO)),
                )
            }
        };
        // Counted as they go: a download cut short logs what reached the
        // socket, not the buffers written whole.
        let (written, result) =
            write_all_vectored_counting(&mut stream, &mut [IoSlice::new(&buffer[..read])]);
        sent += written as u64;
        if let Err(e) = result {
            return (sent, Went::of_client(&e));
        }
    }
    (sent, Went::Whole)
}

/// Writes `bytes`, telling the kernel more follows (`MSG_MORE`): the head
/// goes out in one packet with the start of the body, as nginx's
/// `tcp_nopush` has it, not in one of its own. Returns how many went out,
/// all of them unless the client is gone or too slow, and which.
fn send_more(stream: &TcpStream, bytes: &[u8]) -> (usize, Went) {
    let mut sent = 0;
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        // SAFETY: the descriptor is open (borrowed from `stream`), and the
        // pointer and length are those of a live slice.
        let n = unsafe {
            libc::send(
                stream.as_raw_fd(),
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_MORE | libc::MSG_NOSIGNAL,
            )
        };
        match usize::try_from(n) {
            Ok(0) => return (sent, Went::ClientGone),
            Ok(n) => sent += n,
            Err(_) => match io::Error::last_os_error() {
                e if e.kind() == io::ErrorKind::Interrupted => {}
                e => return (sent, Went::of_client(&e)),
            },
        }
    }
    (sent, Went::Whole)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::files::failed::unreadable_while_sent;
    use crate::proxy::files::send::Opened;
    use std::io::Read;
    use std::net::TcpListener;
    use std::path::Path;

    /// A file of ten bytes, `0123456789`, in a directory removed when
    /// the first is dropped.
    fn ten_bytes() -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ten");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = File::open(&path).unwrap();
        (dir, file)
    }

    /// A client that is gone: every write fails.
    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_copied_file_that_ends_early_is_told_apart_from_a_client_gone() {
        let (_dir, file) = ten_bytes();
        let mut buffer = [0; 4];
        let mut out = Vec::new();
        assert_eq!(
            copy_part(&mut out, &file, (2, 5), &mut buffer),
            (5, Went::Whole)
        );
        assert_eq!(out, b"23456");
        // Said to be twenty bytes long when opened: it ends at ten.
        let mut out = Vec::new();
        assert_eq!(
            copy_part(&mut out, &file, (0, 20), &mut buffer),
            (10, Went::FileEnded)
        );
        assert_eq!(out, b"0123456789");
        assert_eq!(
            copy_part(Gone, &file, (0, 10), &mut buffer),
            (0, Went::ClientGone)
        );
        // Pieces stop at the first that ends early, and say how.
        let pieces = [Piece::Bytes(b"<"), Piece::File(8, 5), Piece::Bytes(b">")];
        let mut out = Vec::new();
        assert_eq!(copy_pieces(&mut out, &file, &pieces), (3, Went::FileEnded));
        assert_eq!(out, b"<89");
    }

    #[test]
    fn a_file_sent_by_sendfile_that_ends_early_is_told_apart_from_a_client_gone() {
        let (_dir, file) = ten_bytes();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        assert_eq!(sendfile_part(&tcp, &file, 0, 10), (10, Went::Whole));
        assert_eq!(sendfile_part(&tcp, &file, 4, 16), (6, Went::FileEnded));
        let mut received = [0; 16];
        peer.read_exact(&mut received).unwrap();
        assert_eq!(&received, b"0123456789456789");
        let pieces = [Piece::File(0, 3), Piece::File(9, 2), Piece::Bytes(b"!")];
        assert_eq!(
            sendfile_pieces(&tcp, b"head ", &file, &pieces),
            (4, Went::FileEnded)
        );
        let mut received = [0; 9];
        peer.read_exact(&mut received).unwrap();
        assert_eq!(&received, b"head 0129");
        // Our side shut for writing: what a client gone gives, EPIPE.
        tcp.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(sendfile_part(&tcp, &file, 0, 10), (0, Went::ClientGone));
    }

    #[test]
    fn a_file_that_cannot_be_read_is_told_apart_from_a_client_gone_or_slow() {
        // A directory opened as a file: every read of it fails (`EISDIR`),
        // as a file on a failing disk's does (`EIO`).
        let dir = tempfile::tempdir().unwrap();
        let unreadable = File::open(dir.path()).unwrap();
        let mut buffer = [0; 4];
        assert_eq!(
            copy_part(Vec::new(), &unreadable, (0, 10), &mut buffer),
            (0, Went::Unreadable(libc::EISDIR))
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _peer = listener.accept().unwrap();
        assert_eq!(
            sendfile_part(&tcp, &unreadable, 0, 10),
            (0, Went::Unreadable(libc::EISDIR))
        );
        assert!(matches!(
            read_pieces(&unreadable, &[Piece::File(0, 10)]),
            Err(Unread::Failed(_))
        ));
        // A client that takes nothing within the send timeout is slow,
        // not gone.
        struct Slow;
        impl Write for Slow {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::WouldBlock.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (_dir, file) = ten_bytes();
        assert_eq!(
            copy_part(Slow, &file, (0, 10), &mut buffer),
            (0, Went::ClientSlow)
        );
        assert_eq!(
            Went::ClientSlow
                .termination()
                .map(|t| t.as_str().to_owned()),
            Some("cD".to_owned())
        );
        assert_eq!(
            Went::Unreadable(libc::EIO).termination().unwrap().as_str(),
            "PD"
        );
        assert_eq!(Went::FileEnded.termination().unwrap().as_str(), "PD");
        assert_eq!(Went::Whole.termination(), None);
    }

    /// A read that fails while a large file streams is said with the
    /// file's path and the error, not only logged `PD`.
    #[test]
    fn a_file_unreadable_while_it_is_sent_is_said_with_its_path_and_error() {
        let dir = tempfile::tempdir().unwrap();
        let unreadable = File::open(dir.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let tcp = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _peer = listener.accept().unwrap();
        let pieces = [Piece::Bytes(b"--part\r\n"), Piece::File(0, 10)];
        let (sent, went) = sendfile_pieces(&tcp, b"head", &unreadable, &pieces);
        assert_eq!((sent, went), (8, Went::Unreadable(libc::EISDIR)));
        let opened = Opened(&unreadable, Path::new("big.bin"), dir.path());
        let error = io::Error::from_raw_os_error(libc::EISDIR);
        let said = unreadable_while_sent(opened, sent, Some(18), &error);
        let path = dir.path().join("big.bin");
        assert!(
            said.starts_with(&format!("{}: reading the file failed", path.display()))
                && said.contains("(8 of 18 body bytes sent)")
                && said.contains(&error.to_string()),
            "{said}"
        );
    }

    #[test]
    fn pieces_read_short_say_how_much_of_them_was_there() {
        let (_dir, file) = ten_bytes();
        assert_eq!(
            read_pieces(&file, &[Piece::Bytes(b"<"), Piece::File(8, 2)]).unwrap(),
            b"<89"
        );
        assert!(matches!(
            read_pieces(&file, &[Piece::File(6, 8)]),
            Err(Unread::Short { read: 4, wanted: 8 })
        ));
    }
}
