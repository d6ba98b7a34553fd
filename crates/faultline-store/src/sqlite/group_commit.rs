//! The group committer: new faults and minted tokens written together, one transaction for
//! all that arrived while the previous one committed.

use super::*;

/// Inserts written together in one transaction at most.
pub(super) const MAX_GROUP: usize = 256;

pub(super) struct InsertJob {
    pub(super) insert: Insert,
    pub(super) done: tokio::sync::oneshot::Sender<StoreResult<()>>,
}

/// What one write of a group inserts.
pub(super) enum Insert {
    /// New faults by `actor`: written in the same multi-row statements as the group's other
    /// new faults by the same actor.
    Faults { faults: Vec<Fault>, actor: String },
    /// Statements of their own (a minted token).
    Statements(Vec<Sql>),
}

/// The statements of a whole group, those it builds kept in `built`: each actor's new faults
/// together, so a group of `k` new faults is a handful of multi-row statements rather than
/// three statements a fault (each statement is a round trip to the connection's thread; those
/// trips were a third of the time of `POST /fault` on SQLite); a minted token's own.
pub(super) fn group_statements<'g>(group: &'g [InsertJob], built: &'g mut Vec<Sql>) -> Vec<&'g Sql> {
    let mut by_actor: Vec<(&str, Vec<&[Fault]>)> = Vec::new();
    for job in group {
        if let Insert::Faults { faults, actor } = &job.insert {
            match by_actor.iter_mut().find(|(a, _)| a == actor) {
                Some((_, writes)) => writes.push(faults),
                None => by_actor.push((actor, vec![faults])),
            }
        }
    }
    for (actor, writes) in by_actor {
        built.extend(match writes.as_slice() {
            // One write's faults (a demo's chunk of 10,000, say): not copied.
            [faults] => sql::insert_faults(faults, actor, Backend::Sqlite),
            writes => sql::insert_faults(&writes.concat(), actor, Backend::Sqlite),
        });
    }
    let built: &'g Vec<Sql> = built;
    let own = group.iter().filter_map(|job| match &job.insert {
        Insert::Statements(statements) => Some(statements),
        Insert::Faults { .. } => None,
    });
    own.flatten().chain(built).collect()
}

/// Write queued inserts in groups: one `BEGIN IMMEDIATE … COMMIT` for all the inserts that
/// arrived while the previous group was committing, acknowledged after the commit. If any
/// insert of a group fails, the group is rolled back and each insert is retried in its own
/// transaction, so a failing insert fails alone. (Savepoints per insert would do the same in
/// one pass, but SQLite then walks every dirty page at each statement, a cost that grows with
/// the transaction.)
pub(super) async fn group_committer(writer: SqlitePool, mut jobs: tokio::sync::mpsc::Receiver<InsertJob>) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut built = Vec::new();
        if run_in_transaction(&writer, &group_statements(&group, &mut built)).await.is_ok() {
            for job in group {
                let _ = job.done.send(Ok(()));
            }
            continue;
        }
        for job in group {
            let mut built = Vec::new();
            let result =
                run_in_transaction(&writer, &group_statements(std::slice::from_ref(&job), &mut built)).await;
            let _ = job.done.send(result);
        }
    }
}

/// `statements` in one write transaction, sent to the writer's connection as one query,
/// `BEGIN IMMEDIATE; …; COMMIT` (sqlx runs every statement of a query on the connection's
/// thread, binding the anonymous parameters of each after the last's): statement by statement,
/// each was a round trip to that thread, six for a group of new faults. A failed statement
/// leaves the transaction open, so it is rolled back before the connection goes back to the
/// pool; should that fail too, the connection is closed instead.
pub(super) async fn run_in_transaction(writer: &SqlitePool, statements: &[&Sql]) -> StoreResult<()> {
    let mut text = String::from("BEGIN IMMEDIATE;\n");
    for statement in statements {
        text.push_str(&statement.positional().0);
        text.push_str(";\n");
    }
    text.push_str("COMMIT");
    let mut query = sqlx::query(&text);
    for statement in statements {
        query = sql::bind_positional!(@after query, statement);
    }
    let mut conn = writer.acquire().await?;
    match query.execute(&mut *conn).await {
        Ok(_) => Ok(()),
        Err(err) => {
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                // No transaction to end (BEGIN failed), or a connection not to trust.
                conn.close_on_drop();
            }
            Err(StoreError::on_constraint(err, "fault"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(insert: Insert) -> InsertJob {
        InsertJob { insert, done: tokio::sync::oneshot::channel().0 }
    }

    fn faults(n: i64) -> Vec<Fault> {
        (0..n)
            .map(|i| {
                let new = faultline_core::fault::NewFault {
                    resource_id: format!("dev_{i}"),
                    fault_type: "reboot".into(),
                    severity: faultline_core::fault::Severity::Low,
                    message: "m".into(),
                    cause: String::new(),
                    microservice_id: "test".into(),
                    resource_ancestry_path: format!("site_1|dev_{i}"),
                    created_at: None,
                };
                Fault::create("cus_1", new, 1_000_000 + i, 60)
            })
            .collect()
    }

    #[test]
    fn a_group_writes_each_actor_s_faults_in_shared_statements() {
        let token =
            Sql::new("INSERT INTO access_tokens (id) VALUES ($1)", vec![sql::Param::Text("t".into())]);
        let group = [
            job(Insert::Faults { faults: faults(2), actor: "key_a".into() }),
            job(Insert::Statements(vec![token])),
            job(Insert::Faults { faults: faults(3), actor: "key_b".into() }),
            job(Insert::Faults { faults: faults(4), actor: "key_a".into() }),
        ];
        let mut built = Vec::new();
        let statements = group_statements(&group, &mut built);
        let texts: Vec<&str> = statements.iter().map(|s| s.text.as_str()).collect();
        // The token's own statement, then per actor: faults, ancestry elements, events.
        assert_eq!(texts.len(), 1 + 2 * 3, "{texts:#?}");
        assert!(texts[0].starts_with("INSERT INTO access_tokens"));
        let rows = |text: &str| text.matches("), (").count() + 1;
        assert!(texts[1].starts_with("INSERT INTO faults") && rows(texts[1]) == 6, "key_a's 2 + 4");
        assert!(texts[4].starts_with("INSERT INTO faults") && rows(texts[4]) == 3, "key_b's 3");
        // One write alone is written as before.
        let mut alone = Vec::new();
        let one = group_statements(&group[2..3], &mut alone);
        let expected = sql::insert_faults(&faults(3), "key_b", Backend::Sqlite);
        assert_eq!(
            one.iter().map(|s| &s.text).collect::<Vec<_>>(),
            expected.iter().map(|s| &s.text).collect::<Vec<_>>()
        );
    }
}
