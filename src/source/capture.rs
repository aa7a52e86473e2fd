//! A file of raw bus bytes, as captured from `master_event_pub.ipc`
//! (the `.bin` files); the stream ends at end of file.
//!
//! The file goes through the very decoder a live socket uses, in chunks, so a
//! capture exercises the same framing, resynchronisation and error counting.

use std::path::PathBuf;

use super::stream::{read_stream, StreamEnd};
use super::{EventSender, ReaderOptions, SourceError};
use crate::shutdown::Shutdown;

/// Reads the capture at `path` to its end.
pub async fn run(
    path: PathBuf,
    opts: ReaderOptions,
    mut sender: EventSender,
    mut shutdown: Shutdown,
) -> Result<(), SourceError> {
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|source| SourceError::Open {
            path: path.display().to_string(),
            source,
        })?;
    sender.stats().set_connected(true);
    match read_stream(file, &opts, &mut sender, &mut shutdown).await {
        StreamEnd::Error(source) => Err(SourceError::Read {
            path: path.display().to_string(),
            source,
        }),
        StreamEnd::Eof | StreamEnd::Shutdown | StreamEnd::ReceiverGone => Ok(()),
    }
}
