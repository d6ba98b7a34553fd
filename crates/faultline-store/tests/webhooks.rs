//! The conformance suite of webhook endpoints (`Webhooks`) and their outbox (`WebhookOutbox`):
//! every test runs on SQLite and on PostgreSQL, and every time is given to the store by the
//! test (microseconds), so nothing waits for the clock.

use std::sync::Arc;

use faultline_core::fault::{Fault, NewFault, Severity};
use faultline_store::{
    AttemptNext, AttemptOutcome, NewWebhookMessage, Store, Webhook, WebhookAttempt, WebhookMessage,
    WebhookQueue, conformance_test,
};

type Db = Arc<dyn Store>;

/// An endpoint of `customer_id`, created (and last updated) at `created_at`.
fn webhook(customer_id: &str, id: &str, created_at: i64) -> Webhook {
    Webhook {
        id: id.to_owned(),
        customer_id: customer_id.to_owned(),
        url: format!("https://hooks.example.com/{id}"),
        events: vec!["fault.created".to_owned(), "fault.resolved".to_owned()],
        filter: r#"{"severity":["high"]}"#.to_owned(),
        description: Some(format!("endpoint {id}")),
        enabled: true,
        disabled_reason: None,
        secret: format!("whsec_{id}"),
        previous_secret: None,
        previous_secret_until: None,
        failing_since: None,
        from_seq: 0,
        created_at,
        updated_at: created_at,
    }
}

/// A message for `webhook`, queued at `created_at` and due then.
fn message(webhook: &Webhook, id: &str, created_at: i64) -> NewWebhookMessage {
    NewWebhookMessage {
        id: id.to_owned(),
        webhook_id: webhook.id.clone(),
        customer_id: webhook.customer_id.clone(),
        event_type: "fault.created".to_owned(),
        body: format!(r#"{{"message":"{id}"}}"#),
        created_at,
        due_at: created_at,
    }
}

fn attempt(at: i64, status_code: Option<i64>) -> WebhookAttempt {
    let error = (status_code != Some(200)).then(|| format!("failed at {at}"));
    WebhookAttempt { at, status_code, duration_ms: at % 997, error, response: Some(format!("answer {at}")) }
}

fn outcome(
    webhook: &Webhook,
    message_id: &str,
    attempt: WebhookAttempt,
    next: AttemptNext,
) -> AttemptOutcome {
    AttemptOutcome { message_id: message_id.to_owned(), webhook_id: webhook.id.clone(), attempt, next }
}

/// Create an endpoint (without an idempotency key): the endpoint as stored.
async fn create(store: &Db, webhook: &Webhook) -> Webhook {
    store.create_webhook(webhook, None).await.unwrap().done().expect("no key, no replay")
}

/// Rotate an endpoint's secret (without an idempotency key).
async fn rotate(
    store: &Db,
    customer_id: &str,
    id: &str,
    secret: &str,
    until: i64,
    now: i64,
) -> Option<Webhook> {
    let written = store.rotate_webhook_secret(customer_id, id, secret, until, now, None).await.unwrap();
    written.done().expect("no key, no replay")
}

/// Record one attempt, with an endpoint-disabling threshold nothing reaches.
async fn record(store: &Db, webhook: &Webhook, message_id: &str, attempt: WebhookAttempt, next: AttemptNext) {
    let disabled =
        store.record_webhook_attempts(&[outcome(webhook, message_id, attempt, next)], 0).await.unwrap();
    assert_eq!(disabled, Vec::<String>::new());
}

async fn queue(store: &Db, messages: &[NewWebhookMessage]) {
    for m in messages {
        store.queue_webhook_message(m).await.unwrap();
    }
}

async fn get_message(store: &Db, webhook: &Webhook, message_id: &str) -> Option<WebhookMessage> {
    store.get_webhook_message(&webhook.customer_id, &webhook.id, message_id).await.unwrap()
}

async fn status_of(store: &Db, webhook: &Webhook, message_id: &str) -> (String, Option<i64>) {
    let m = get_message(store, webhook, message_id).await.expect("the message");
    (m.status, m.next_attempt_at)
}

/// The endpoints the tests create (and one that does not exist).
fn every_webhook() -> Vec<String> {
    ["whk_1", "whk_2", "whk_3", "whk_4", "whk_9"].map(String::from).to_vec()
}

/// The due messages of every endpoint but `skip`, at most `per_webhook` of each.
async fn due_ids(store: &Db, now: i64, skip: &[&str], per_webhook: u32) -> Vec<String> {
    let asked: Vec<String> = every_webhook().into_iter().filter(|id| !skip.contains(&id.as_str())).collect();
    store.due_webhook_messages(now, &asked, per_webhook).await.unwrap().into_iter().map(|m| m.id).collect()
}

async fn stored(store: &Db, w: &Webhook) -> Webhook {
    store.get_webhook(&w.customer_id, &w.id).await.unwrap().expect("the webhook")
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| id(i).to_owned()).collect()
}

async fn insert_fault(store: &Db, customer_id: &str, resource_id: &str, at: i64) {
    let new = NewFault {
        resource_id: resource_id.to_owned(),
        fault_type: "reboot".to_owned(),
        severity: Severity::High,
        message: format!("reboot of {resource_id}"),
        cause: String::new(),
        microservice_id: "test".to_owned(),
        resource_ancestry_path: format!("site_1|{resource_id}"),
        created_at: Some(at),
    };
    let fault = Fault::create(customer_id, new, at, 400 * 86_400);
    store.insert_faults(&[fault], "test", None).await.unwrap();
}

// ---- endpoints ----

conformance_test!(a_new_webhook_starts_at_the_log_head, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let now = faultline_core::time::now_micros();
    insert_fault(&store, &a, "dev_1", now).await;
    insert_fault(&store, &a, "dev_2", now + 1).await;
    let (head, _) = store.log_head().await.unwrap();
    assert!(head > 0, "the log has entries");
    let mut w1 = webhook(&a, "whk_1", 1_000);
    w1.from_seq = 9_999;
    let created = create(&store, &w1).await;
    assert_eq!(created.from_seq, head, "from_seq is the log head, whatever the caller said");
    assert_eq!(created, Webhook { from_seq: head, ..w1.clone() }, "everything else as given");
    assert_eq!(stored(&store, &w1).await, created);

    insert_fault(&store, &a, "dev_3", now + 2).await;
    let (later, _) = store.log_head().await.unwrap();
    assert!(later > head);
    let w2 = create(&store, &webhook(&a, "whk_2", 2_000)).await;
    assert_eq!(w2.from_seq, later, "a later endpoint starts at the later head");
});

conformance_test!(webhooks_are_listed_newest_first_paged_and_per_customer, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    // Two share a creation time across a page boundary: the id breaks the tie.
    for (id, at) in [("whk_1", 100), ("whk_2", 200), ("whk_3", 300), ("whk_4", 300), ("whk_5", 400)] {
        create(&store, &webhook(&a, id, at)).await;
    }
    let theirs = create(&store, &webhook(&b, "whk_b", 250)).await;

    let all = store.list_webhooks(&a, None, 10).await.unwrap();
    assert_eq!(ids(&all, |w| &w.id), ["whk_5", "whk_4", "whk_3", "whk_2", "whk_1"]);
    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut after = None;
    for _ in 0..4 {
        // Bounded: a cursor that does not move on must fail, not hang.
        let page = store.list_webhooks(&a, after.clone(), 2).await.unwrap();
        sizes.push(page.len());
        let Some(last) = page.last() else { break };
        after = Some((last.created_at, last.id.clone()));
        paged.extend(page);
    }
    assert_eq!(sizes, [2, 2, 1, 0]);
    assert_eq!(paged, all, "no duplicates, no gaps");

    assert_eq!(store.list_webhooks(&b, None, 10).await.unwrap(), vec![theirs.clone()]);
    assert!(store.get_webhook(&b, "whk_1").await.unwrap().is_none(), "another customer's");
    assert!(store.get_webhook(&a, "whk_b").await.unwrap().is_none(), "another customer's");
    assert_eq!(store.get_webhook(&b, "whk_b").await.unwrap(), Some(theirs));
    assert!(store.get_webhook(&a, "whk_missing").await.unwrap().is_none());
});

conformance_test!(an_update_saves_what_may_change_for_its_customer_only, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let created = create(&store, &webhook(&a, "whk_1", 1_000)).await;

    let foreign =
        Webhook { customer_id: b.clone(), url: "https://evil.example.com".into(), ..created.clone() };
    assert_eq!(store.update_webhook(&foreign).await.unwrap(), None);
    assert_eq!(stored(&store, &created).await, created, "untouched by another customer");
    let missing = Webhook { id: "whk_missing".into(), ..created.clone() };
    assert_eq!(store.update_webhook(&missing).await.unwrap(), None);

    let changed = Webhook {
        url: "https://hooks.example.com/new".into(),
        events: vec!["fault.deleted".into()],
        filter: "{}".into(),
        description: None,
        enabled: false,
        disabled_reason: Some("failing".into()),
        failing_since: Some(1_500),
        updated_at: 2_000,
        // Not for update to change:
        secret: "whsec_other".into(),
        from_seq: 77,
        created_at: 5,
        ..created.clone()
    };
    let expected = Webhook {
        secret: created.secret.clone(),
        from_seq: created.from_seq,
        created_at: created.created_at,
        ..changed.clone()
    };
    assert_eq!(store.update_webhook(&changed).await.unwrap(), Some(expected.clone()));
    assert_eq!(stored(&store, &created).await, expected);
    let back = Webhook { description: Some("back".into()), enabled: true, disabled_reason: None, ..expected };
    assert_eq!(store.update_webhook(&back).await.unwrap(), Some(back.clone()));
    assert_eq!(stored(&store, &created).await, back, "and the None/false fields back");
});

conformance_test!(deleting_a_webhook_deletes_its_messages_and_attempts, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let gone = create(&store, &webhook(&a, "whk_1", 1_000)).await;
    let kept = create(&store, &webhook(&a, "whk_2", 1_000)).await;
    queue(&store, &[message(&gone, "msg_1", 2_000), message(&gone, "msg_2", 2_100)]).await;
    queue(&store, &[message(&kept, "msg_3", 2_200)]).await;
    record(&store, &gone, "msg_1", attempt(3_000, Some(500)), AttemptNext::RetryAt(9_000)).await;
    record(&store, &kept, "msg_3", attempt(3_000, Some(500)), AttemptNext::RetryAt(9_000)).await;

    assert!(!store.delete_webhook(&b, &gone.id).await.unwrap(), "not another customer's");
    assert!(store.get_webhook(&a, &gone.id).await.unwrap().is_some());
    assert!(store.delete_webhook(&a, &gone.id).await.unwrap());
    assert!(store.get_webhook(&a, &gone.id).await.unwrap().is_none());
    assert!(store.list_webhook_messages(&a, &gone.id, None, None, 10).await.unwrap().is_empty());
    assert!(get_message(&store, &gone, "msg_1").await.is_none());
    assert_eq!(store.webhook_queue().await.unwrap().pending, 1, "only the kept endpoint's message");
    assert_eq!(due_ids(&store, 10_000, &[], 10).await, ["msg_3"]);
    // A new message under a deleted one's id shows no attempts left behind.
    queue(&store, &[message(&kept, "msg_1", 4_000)]).await;
    assert_eq!(get_message(&store, &kept, "msg_1").await.unwrap().attempts, vec![]);
    assert_eq!(get_message(&store, &kept, "msg_3").await.unwrap().attempts.len(), 1, "others keep theirs");
    assert!(!store.delete_webhook(&a, &gone.id).await.unwrap(), "the second time");
    assert!(store.get_webhook(&a, &kept.id).await.unwrap().is_some());
});

conformance_test!(rotating_a_secret_keeps_the_previous_one_until_then, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let w = create(&store, &webhook(&a, "whk_1", 1_000)).await;
    assert_eq!(rotate(&store, &b, &w.id, "whsec_evil", 9_000, 2_000).await, None);
    assert_eq!(rotate(&store, &a, "whk_missing", "whsec_x", 9_000, 2_000).await, None);
    assert_eq!(stored(&store, &w).await, w, "untouched");

    let rotated = rotate(&store, &a, &w.id, "whsec_two", 5_000, 2_000).await.unwrap();
    let expected = Webhook {
        secret: "whsec_two".into(),
        previous_secret: Some(w.secret.clone()),
        previous_secret_until: Some(5_000),
        updated_at: 2_000,
        ..w.clone()
    };
    assert_eq!(rotated, expected);
    assert_eq!(stored(&store, &w).await, expected);
    let again = rotate(&store, &a, &w.id, "whsec_three", 8_000, 3_000).await.unwrap();
    assert_eq!(
        (again.secret.as_str(), again.previous_secret.as_deref(), again.previous_secret_until),
        ("whsec_three", Some("whsec_two"), Some(8_000))
    );
});

// ---- the outbox ----

conformance_test!(queueing_moves_the_dispatch_position_only_from_where_it_is, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let w = create(&store, &webhook(&a, "whk_1", 1_000)).await;
    let start = store.webhook_dispatch_position().await.unwrap();
    let (m1, m2) = (message(&w, "msg_1", 2_000), message(&w, "msg_2", 2_100));
    assert!(store.queue_webhook_messages(&[m1, m2], start, start + 5).await.unwrap());
    assert_eq!(store.webhook_dispatch_position().await.unwrap(), start + 5);
    let listed = store.list_webhook_messages(&a, &w.id, None, None, 10).await.unwrap();
    assert_eq!(ids(&listed, |m| &m.id), ["msg_2", "msg_1"]);
    let first = &listed[1];
    assert_eq!((first.status.as_str(), first.next_attempt_at), ("pending", Some(2_000)));
    assert_eq!((first.event_type.as_str(), first.body.as_str()), ("fault.created", r#"{"message":"msg_1"}"#));

    // Another replica dispatched from `start` too: nothing of its batch is written.
    let stale = message(&w, "msg_3", 2_200);
    assert!(!store.queue_webhook_messages(&[stale], start, start + 9).await.unwrap());
    assert_eq!(store.webhook_dispatch_position().await.unwrap(), start + 5);
    assert!(get_message(&store, &w, "msg_3").await.is_none());
    assert_eq!(store.webhook_queue().await.unwrap().pending, 2);

    assert!(store.queue_webhook_messages(&[], start + 5, start + 7).await.unwrap(), "entries owing nothing");
    assert_eq!(store.webhook_dispatch_position().await.unwrap(), start + 7);

    // A test message is queued without the position.
    let mut test = message(&w, "msg_test", 3_000);
    (test.event_type, test.due_at) = ("webhook.test".into(), 3_500);
    store.queue_webhook_message(&test).await.unwrap();
    assert_eq!(store.webhook_dispatch_position().await.unwrap(), start + 7);
    let m = get_message(&store, &w, "msg_test").await.unwrap();
    assert_eq!((m.event_type.as_str(), m.status.as_str()), ("webhook.test", "pending"));
    assert_eq!((m.created_at, m.next_attempt_at), (3_000, Some(3_500)));
});

conformance_test!(due_messages_are_pending_enabled_not_busy_and_longest_due_first, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let w1 = create(&store, &webhook(&a, "whk_1", 1)).await;
    let w1 = rotate(&store, &a, &w1.id, "whsec_new", 7_000, 2).await.unwrap();
    let w2 = create(&store, &webhook(&b, "whk_2", 1)).await;
    let w3 = create(&store, &webhook(&a, "whk_3", 1)).await;
    let off = Webhook { enabled: false, disabled_reason: Some("failing".into()), ..w3.clone() };
    store.update_webhook(&off).await.unwrap().unwrap();
    create(&store, &webhook(&b, "whk_4", 1)).await;

    let mut enabled = ids(&store.enabled_webhooks().await.unwrap(), |w| &w.id);
    enabled.sort();
    assert_eq!(enabled, ["whk_1", "whk_2", "whk_4"], "every customer's, not the disabled one");

    let mut future = message(&w1, "msg_future", 100);
    future.due_at = 900;
    queue(&store, &[message(&w1, "msg_a", 300), message(&w1, "msg_b", 100), message(&w2, "msg_c", 200)])
        .await;
    queue(&store, &[future, message(&w3, "msg_off", 50)]).await;

    assert_eq!(due_ids(&store, 500, &[], 10).await, ["msg_b", "msg_c", "msg_a"]);
    assert_eq!(due_ids(&store, 500, &[], 1).await, ["msg_b", "msg_c"], "the longest due of each");
    assert_eq!(due_ids(&store, 500, &["whk_2"], 10).await, ["msg_b", "msg_a"]);
    assert_eq!(due_ids(&store, 500, &["whk_1", "whk_9"], 10).await, ["msg_c"]);
    assert_eq!(due_ids(&store, 500, &["whk_1", "whk_2"], 10).await, Vec::<String>::new());
    let only_w2 = store.due_webhook_messages(500, &["whk_2".to_owned()], 10).await.unwrap();
    assert_eq!(ids(&only_w2, |m| &m.id), ["msg_c"], "only the endpoints asked for");
    assert_eq!(due_ids(&store, 899, &[], 10).await, ["msg_b", "msg_c", "msg_a"]);
    assert_eq!(due_ids(&store, 900, &[], 10).await, ["msg_b", "msg_c", "msg_a", "msg_future"]);
    assert_eq!(due_ids(&store, 99, &[], 10).await, Vec::<String>::new());

    let due = store.due_webhook_messages(500, &every_webhook(), 10).await.unwrap();
    let (b1, c) = (&due[0], &due[1]);
    assert_eq!((b1.webhook_id.as_str(), b1.url.as_str()), ("whk_1", w1.url.as_str()));
    assert_eq!((b1.body.as_str(), b1.attempts), (r#"{"message":"msg_b"}"#, 0));
    assert_eq!((b1.secret.as_str(), b1.previous_secret.as_deref()), ("whsec_new", Some("whsec_whk_1")));
    assert_eq!(b1.previous_secret_until, Some(7_000));
    assert_eq!((c.url.as_str(), c.secret.as_str()), (w2.url.as_str(), w2.secret.as_str()));
    assert_eq!((c.previous_secret.as_deref(), c.previous_secret_until), (None, None));
    let later = store.due_webhook_messages(900, &every_webhook(), 10).await.unwrap();
    assert_eq!((later[3].id.as_str(), later[3].created_at), ("msg_future", 100), "queued at, not due at");
});

conformance_test!(attempts_are_recorded_with_what_became_of_the_message, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let w = create(&store, &webhook(&a, "whk_1", 1)).await;
    queue(&store, &[message(&w, "msg_1", 100), message(&w, "msg_2", 200), message(&w, "msg_3", 300)]).await;

    let first = WebhookAttempt {
        at: 1_000,
        status_code: Some(503),
        duration_ms: 42,
        error: Some("HTTP 503".into()),
        response: Some("busy".into()),
    };
    record(&store, &w, "msg_1", first.clone(), AttemptNext::RetryAt(2_000)).await;
    assert_eq!(status_of(&store, &w, "msg_1").await, ("pending".into(), Some(2_000)));
    assert_eq!(stored(&store, &w).await.failing_since, Some(1_000));
    assert_eq!(due_ids(&store, 1_999, &[], 10).await, ["msg_2", "msg_3"], "not due before its retry");
    let due = store.due_webhook_messages(2_000, &every_webhook(), 10).await.unwrap();
    assert_eq!((due[2].id.as_str(), due[2].attempts), ("msg_1", 1));

    let second = WebhookAttempt {
        at: 2_000,
        status_code: None,
        duration_ms: 10_000,
        error: Some("timed out".into()),
        response: None,
    };
    record(&store, &w, "msg_1", second.clone(), AttemptNext::RetryAt(4_000)).await;
    assert_eq!(status_of(&store, &w, "msg_1").await, ("pending".into(), Some(4_000)));
    assert_eq!(stored(&store, &w).await.failing_since, Some(1_000), "since the first failure");
    let due = store.due_webhook_messages(4_000, &every_webhook(), 10).await.unwrap();
    assert_eq!((due[2].id.as_str(), due[2].attempts), ("msg_1", 2));

    let third = attempt(4_000, Some(200));
    record(&store, &w, "msg_1", third.clone(), AttemptNext::Delivered).await;
    let m = get_message(&store, &w, "msg_1").await.unwrap();
    assert_eq!((m.status.as_str(), m.next_attempt_at), ("delivered", None));
    assert_eq!(m.attempts, [first, second, third], "oldest first, as recorded");
    assert_eq!(stored(&store, &w).await.failing_since, None, "a success clears it");

    // Two outcomes in one call; the schedule has no attempt left for msg_2.
    let outcomes = [
        outcome(&w, "msg_2", attempt(5_000, Some(410)), AttemptNext::Failed),
        outcome(&w, "msg_3", attempt(5_001, Some(200)), AttemptNext::Delivered),
    ];
    assert_eq!(store.record_webhook_attempts(&outcomes, 0).await.unwrap(), Vec::<String>::new());
    assert_eq!(status_of(&store, &w, "msg_2").await, ("failed".into(), None));
    assert_eq!(status_of(&store, &w, "msg_3").await, ("delivered".into(), None));
    assert_eq!(get_message(&store, &w, "msg_2").await.unwrap().attempts, [attempt(5_000, Some(410))]);
    assert_eq!(due_ids(&store, 100_000, &[], 10).await, Vec::<String>::new(), "nothing left to attempt");
    assert!(stored(&store, &w).await.enabled);
});

conformance_test!(
    an_endpoint_failing_since_the_threshold_is_disabled_with_its_messages,
    |store: Db| async move {
        let a = store.create_customer("Acme").await.unwrap().id;
        let w = create(&store, &webhook(&a, "whk_1", 1)).await;
        let other = create(&store, &webhook(&a, "whk_2", 1)).await;
        queue(&store, &[message(&w, "msg_1", 100), message(&w, "msg_2", 200), message(&w, "msg_3", 300)])
            .await;
        queue(&store, &[message(&other, "msg_4", 400)]).await;
        let fail = |message_id: &str, at: i64, webhook: &Webhook| {
            [outcome(webhook, message_id, attempt(at, Some(500)), AttemptNext::RetryAt(at + 1_000))]
        };

        // Failing since 1_000: not yet past thresholds before it.
        assert!(store.record_webhook_attempts(&fail("msg_1", 1_000, &w), 500).await.unwrap().is_empty());
        assert!(store.record_webhook_attempts(&fail("msg_2", 1_500, &w), 900).await.unwrap().is_empty());
        assert_eq!(stored(&store, &w).await.failing_since, Some(1_000));
        // A success in between starts the count again: failing since 2_000, not 1_000.
        record(&store, &w, "msg_2", attempt(1_600, Some(200)), AttemptNext::Delivered).await;
        assert!(store.record_webhook_attempts(&fail("msg_1", 2_000, &w), 1_500).await.unwrap().is_empty());
        assert_eq!(stored(&store, &w).await.failing_since, Some(2_000));
        assert!(stored(&store, &w).await.enabled);
        // The other endpoint fails too, but not for long enough.
        assert!(
            store.record_webhook_attempts(&fail("msg_4", 2_500, &other), 2_000).await.unwrap().is_empty()
        );

        let disabled = store.record_webhook_attempts(&fail("msg_1", 3_000, &w), 2_000).await.unwrap();
        assert_eq!(disabled, ["whk_1"]);
        let now_off = stored(&store, &w).await;
        assert_eq!((now_off.enabled, now_off.disabled_reason.as_deref()), (false, Some("failing")));
        assert_eq!(
            status_of(&store, &w, "msg_1").await,
            ("failed".into(), None),
            "its pending messages fail"
        );
        assert_eq!(status_of(&store, &w, "msg_3").await, ("failed".into(), None));
        assert_eq!(status_of(&store, &w, "msg_2").await, ("delivered".into(), None), "delivered stays");
        assert_eq!(get_message(&store, &w, "msg_1").await.unwrap().attempts.len(), 3);
        assert_eq!(status_of(&store, &other, "msg_4").await, ("pending".into(), Some(3_500)));
        assert!(stored(&store, &other).await.enabled);
        assert_eq!(ids(&store.enabled_webhooks().await.unwrap(), |w| &w.id), ["whk_2"]);
        assert_eq!(due_ids(&store, 100_000, &[], 10).await, ["msg_4"]);
        assert_eq!(store.webhook_queue().await.unwrap().pending, 1);
    }
);

conformance_test!(messages_are_listed_newest_first_by_status_and_cursor, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let w = create(&store, &webhook(&a, "whk_1", 1)).await;
    let other = create(&store, &webhook(&a, "whk_2", 1)).await;
    let at = [("msg_1", 100), ("msg_2", 200), ("msg_3", 300), ("msg_4", 300), ("msg_5", 400)];
    queue(&store, &at.map(|(id, at)| message(&w, id, at))).await;
    queue(&store, &[message(&other, "msg_6", 250)]).await;
    record(&store, &w, "msg_2", attempt(1_000, Some(500)), AttemptNext::Failed).await;
    record(&store, &w, "msg_4", attempt(1_001, None), AttemptNext::Failed).await;
    record(&store, &w, "msg_5", attempt(1_002, Some(200)), AttemptNext::Delivered).await;

    let list = |status: Option<&'static str>, after: Option<(i64, String)>, limit: u32| {
        let (store, a) = (store.clone(), a.clone());
        async move { store.list_webhook_messages(&a, "whk_1", status, after, limit).await.unwrap() }
    };
    let all = list(None, None, 10).await;
    assert_eq!(ids(&all, |m| &m.id), ["msg_5", "msg_4", "msg_3", "msg_2", "msg_1"]);
    assert_eq!(all[0].attempts, [attempt(1_002, Some(200))], "with their attempts");
    assert_eq!(all[2].attempts, vec![]);
    assert_eq!(ids(&list(Some("failed"), None, 10).await, |m| &m.id), ["msg_4", "msg_2"]);
    assert_eq!(ids(&list(Some("pending"), None, 10).await, |m| &m.id), ["msg_3", "msg_1"]);
    assert_eq!(ids(&list(Some("delivered"), None, 10).await, |m| &m.id), ["msg_5"]);
    let after_4 = Some((300, "msg_4".to_owned()));
    assert_eq!(ids(&list(Some("failed"), after_4, 10).await, |m| &m.id), ["msg_2"]);

    let (mut paged, mut after) = (Vec::new(), None);
    for _ in 0..4 {
        let page = list(None, after.clone(), 2).await;
        let Some(last) = page.last() else { break };
        assert!(page.len() <= 2);
        after = Some((last.created_at, last.id.clone()));
        paged.extend(page);
    }
    assert_eq!(paged, all, "no duplicates, no gaps");

    assert!(store.list_webhook_messages(&b, "whk_1", None, None, 10).await.unwrap().is_empty());
    let others = store.list_webhook_messages(&a, "whk_2", None, None, 10).await.unwrap();
    assert_eq!(ids(&others, |m| &m.id), ["msg_6"]);
});

conformance_test!(a_message_is_its_customers_and_a_retry_makes_it_due_now, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let w = create(&store, &webhook(&a, "whk_1", 1)).await;
    let other = create(&store, &webhook(&a, "whk_2", 1)).await;
    queue(&store, &[message(&w, "msg_1", 100)]).await;
    record(&store, &w, "msg_1", attempt(1_000, Some(500)), AttemptNext::Failed).await;

    let m = get_message(&store, &w, "msg_1").await.expect("its own");
    assert_eq!((m.id.as_str(), m.webhook_id.as_str(), m.created_at), ("msg_1", "whk_1", 100));
    assert_eq!(m.attempts, [attempt(1_000, Some(500))]);
    assert!(store.get_webhook_message(&b, "whk_1", "msg_1").await.unwrap().is_none(), "another customer");
    assert!(get_message(&store, &other, "msg_1").await.is_none(), "another endpoint");
    assert!(get_message(&store, &w, "msg_missing").await.is_none());

    assert!(!store.retry_webhook_message(&b, "whk_1", "msg_1", 7_000).await.unwrap());
    assert!(!store.retry_webhook_message(&a, "whk_2", "msg_1", 7_000).await.unwrap());
    assert!(!store.retry_webhook_message(&a, "whk_1", "msg_missing", 7_000).await.unwrap());
    assert_eq!(status_of(&store, &w, "msg_1").await, ("failed".into(), None));
    assert_eq!(due_ids(&store, 100_000, &[], 10).await, Vec::<String>::new());

    assert!(store.retry_webhook_message(&a, "whk_1", "msg_1", 7_000).await.unwrap());
    assert_eq!(status_of(&store, &w, "msg_1").await, ("pending".into(), Some(7_000)));
    assert_eq!(due_ids(&store, 6_999, &[], 10).await, Vec::<String>::new());
    assert_eq!(due_ids(&store, 7_000, &[], 10).await, ["msg_1"]);
    assert_eq!(
        store.webhook_queue().await.unwrap(),
        WebhookQueue { pending: 1, oldest_created_at: Some(100) }
    );
});

conformance_test!(the_queue_counts_pending_messages_since_the_oldest, |store: Db| async move {
    assert_eq!(store.webhook_queue().await.unwrap(), WebhookQueue { pending: 0, oldest_created_at: None });
    let a = store.create_customer("Acme").await.unwrap().id;
    let b = store.create_customer("Globex").await.unwrap().id;
    let wa = create(&store, &webhook(&a, "whk_1", 1)).await;
    let wb = create(&store, &webhook(&b, "whk_2", 1)).await;
    queue(&store, &[message(&wa, "msg_1", 300), message(&wb, "msg_2", 200), message(&wa, "msg_3", 500)])
        .await;
    assert_eq!(
        store.webhook_queue().await.unwrap(),
        WebhookQueue { pending: 3, oldest_created_at: Some(200) }
    );
    record(&store, &wb, "msg_2", attempt(1_000, Some(200)), AttemptNext::Delivered).await;
    assert_eq!(
        store.webhook_queue().await.unwrap(),
        WebhookQueue { pending: 2, oldest_created_at: Some(300) }
    );
    record(&store, &wa, "msg_1", attempt(1_000, Some(500)), AttemptNext::RetryAt(2_000)).await;
    assert_eq!(
        store.webhook_queue().await.unwrap(),
        WebhookQueue { pending: 2, oldest_created_at: Some(300) }
    );
    record(&store, &wa, "msg_1", attempt(2_000, Some(500)), AttemptNext::Failed).await;
    assert_eq!(
        store.webhook_queue().await.unwrap(),
        WebhookQueue { pending: 1, oldest_created_at: Some(500) }
    );
});

conformance_test!(pruning_deletes_only_old_finished_messages_and_their_attempts, |store: Db| async move {
    let a = store.create_customer("Acme").await.unwrap().id;
    let w = create(&store, &webhook(&a, "whk_1", 1)).await;
    let at = [
        ("msg_d1", 100),
        ("msg_f", 150),
        ("msg_d2", 180),
        ("msg_p", 120),
        ("msg_edge", 500),
        ("msg_new", 900),
    ];
    queue(&store, &at.map(|(id, at)| message(&w, id, at))).await;
    for (id, next) in [
        ("msg_d1", AttemptNext::Delivered),
        ("msg_f", AttemptNext::Failed),
        ("msg_d2", AttemptNext::Delivered),
        ("msg_p", AttemptNext::RetryAt(5_000)),
        ("msg_edge", AttemptNext::Delivered),
        ("msg_new", AttemptNext::Failed),
    ] {
        let code = if next == AttemptNext::Delivered { 200 } else { 500 };
        record(&store, &w, id, attempt(1_000, Some(code)), next).await;
    }

    // Up to the limit, oldest first.
    assert_eq!(store.prune_webhook_messages(500, 2).await.unwrap(), 2);
    assert!(get_message(&store, &w, "msg_d1").await.is_none());
    assert!(get_message(&store, &w, "msg_f").await.is_none());
    assert!(get_message(&store, &w, "msg_d2").await.is_some());
    assert_eq!(store.prune_webhook_messages(500, 2).await.unwrap(), 1);
    assert_eq!(store.prune_webhook_messages(500, 2).await.unwrap(), 0);
    let left = store.list_webhook_messages(&a, &w.id, None, None, 10).await.unwrap();
    assert_eq!(ids(&left, |m| &m.id), ["msg_new", "msg_edge", "msg_p"], "pending and not-before stay");
    assert!(left.iter().all(|m| m.attempts.len() == 1), "with their attempts");

    // New messages under the pruned ids show no attempts left behind.
    queue(&store, &[message(&w, "msg_d1", 2_000), message(&w, "msg_f", 2_000), message(&w, "msg_d2", 2_000)])
        .await;
    for id in ["msg_d1", "msg_f", "msg_d2"] {
        assert_eq!(get_message(&store, &w, id).await.unwrap().attempts, vec![], "{id}");
    }
});
