//! Who may have the live feed open (`migrations/0011`): set by a user's feed object before it
//! accepts a socket, read by every webhook's batch (`sql::delivery_outcome!`), cleared by an
//! object that finds no socket.

use super::{decode_version, sql, Columns, Database, FromRow, RowSet, Statement, Store};
use crate::domain::{UserId, Version};
use crate::error::{AppError, AppResult, Context};

/// What marking a user as listening found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listening {
    /// Moved by every socket opened: the one clear that may undo this mark names it.
    pub generation: u64,
    /// The user's version after the mark: a change committed before it is at most this, and
    /// a change committed after it sees the mark and is told to the feed.
    pub version: Version,
}

struct GenerationRow {
    generation: i64,
}

impl FromRow for GenerationRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(GenerationRow {
            generation: row.int("generation")?,
        })
    }
}

impl<D: Database> Store<D> {
    /// Marks `user` as listening and reads their version, in one batch, in that order.
    pub async fn listen(&self, user: &UserId) -> AppResult<Listening> {
        let results = self
            .batch(vec![
                Statement::new(sql::LISTEN, vec![user.as_str().into()]),
                Statement::new(sql::VERSION_OF_USER, vec![user.as_str().into()]),
            ])
            .await
            .context("marking a live listener")?;
        let [mark, version] = results.as_slice() else {
            return Err(AppError::internal(
                "live listener batch: wrong result count",
            ));
        };
        let generation = mark
            .decode::<GenerationRow>()?
            .first()
            .and_then(|r| u64::try_from(r.generation).ok())
            .ok_or_else(|| AppError::internal("a live listener without its generation"))?;
        Ok(Listening {
            generation,
            version: decode_version(version)?,
        })
    }

    /// Clears `user`'s mark unless a socket was opened after `generation`; whether it did.
    pub async fn stop_listening(&self, user: &UserId, generation: u64) -> AppResult<bool> {
        let generation = i64::try_from(generation)
            .map_err(|_| AppError::internal("a live listener generation past i64"))?;
        let rows = self
            .query(Statement::new(
                sql::STOP_LISTENING,
                vec![user.as_str().into(), generation.into()],
            ))
            .await
            .context("clearing a live listener")?;
        Ok(rows.meta().changes > 0)
    }
}
