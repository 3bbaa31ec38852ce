//! PostgreSQL going away under the command API: callers get `UNAVAILABLE` with a clear
//! message, and retrying with the same command ids once it is back neither loses nor
//! doubles a command, even for commands whose connection was cut mid-flight.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use noroshi_proto::v1 as pb;
use noroshi_tests::api::{
    ApiOptions, HC, HOSPITAL, TestApi, authed, declare_request, report_request,
};
use pb::BedCategory as Bed;
use tonic::Code;
use uuid::Uuid;

async fn store_outage_api() -> TestApi {
    let api = TestApi::with(ApiOptions {
        through_proxy: true,
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    api
}

#[tokio::test]
async fn commands_during_an_outage_are_unavailable_and_write_nothing() {
    let api = store_outage_api().await;
    let proxy = api.proxy.as_ref().expect("proxy");
    let before = api.db.event_count().await;

    proxy.cut();
    let declaration = declare_request("hofu-central", Bed::Moderate, 10, 8, 2);
    let status = api
        .facilities()
        .declare_capacity(authed(HOSPITAL, declaration.clone()))
        .await
        .expect_err("the store is unreachable");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        "service unavailable: the event store cannot be reached; retry later"
    );
    let status = api
        .cases()
        .report_case(authed(HC, report_request(pb::Severity::Mild)))
        .await
        .expect_err("the store is unreachable");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(api.db.event_count().await, before, "nothing was written");

    proxy.restore().await;
    let first = api
        .facilities()
        .declare_capacity(authed(HOSPITAL, declaration.clone()))
        .await
        .expect("the store is back")
        .into_inner();
    let again = api
        .facilities()
        .declare_capacity(authed(HOSPITAL, declaration))
        .await
        .expect("a retry")
        .into_inner();
    assert!(!first.replayed && again.replayed);
    assert_eq!(
        (first.version, first.position),
        (again.version, again.position)
    );
    assert_eq!(api.db.event_count().await, before + 1);
}

#[tokio::test]
async fn a_cut_mid_burst_loses_and_doubles_nothing_after_retries() {
    const COMMANDS: usize = 40;
    let api = store_outage_api().await;
    let proxy = api.proxy.as_ref().expect("proxy");
    let requests: Vec<pb::DeclareCapacityRequest> = (0..COMMANDS)
        .map(|n| declare_request("hofu-central", Bed::Moderate, 100, 20 + n as i64, 5))
        .collect();

    // Every command races for the same stream; the connection is cut while they run.
    let mut burst = tokio::task::JoinSet::new();
    for request in requests.clone() {
        let mut client = api.facilities();
        burst.spawn(async move {
            let outcome = client
                .declare_capacity(authed(HOSPITAL, request.clone()))
                .await;
            (request, outcome.map(tonic::Response::into_inner))
        });
    }
    let mut answers: HashMap<String, pb::CommandResult> = HashMap::new();
    let mut unanswered = Vec::new();
    let mut first = true;
    while let Some(joined) = burst.join_next().await {
        if std::mem::take(&mut first) {
            // The others are still queued behind the stream's version check.
            proxy.cut();
        }
        let (request, outcome) = joined.expect("the task ran");
        match outcome {
            Ok(result) => {
                answers.insert(request.command_id.clone(), result);
            }
            Err(status) => {
                assert!(
                    matches!(status.code(), Code::Unavailable | Code::Aborted),
                    "an outage is UNAVAILABLE (or ABORTED after lost races), never {status:?}"
                );
                unanswered.push(request);
            }
        }
    }
    assert!(
        !unanswered.is_empty(),
        "the cut came before every command had finished"
    );

    proxy.restore().await;
    for request in unanswered {
        let result = api
            .facilities()
            .declare_capacity(authed(HOSPITAL, request.clone()))
            .await
            .expect("a retry after the outage")
            .into_inner();
        answers.insert(request.command_id.clone(), result);
    }
    assert_eq!(answers.len(), COMMANDS);

    // Exactly one event per command id, at the version and position its answer named.
    let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(
        "SELECT command_id, version, position FROM events WHERE stream_id = 'facility-hofu-central' \
         AND event_type = 'noroshi.v1.CapacityDeclared'",
    )
    .fetch_all(api.db.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), COMMANDS, "one declaration per command");
    for (command_id, version, position) in rows {
        let answer = &answers[&command_id.to_string()];
        assert_eq!(
            (answer.version, answer.position),
            (version as u64, position as u64),
            "command {command_id}"
        );
    }
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM events WHERE stream_id = 'facility-hofu-central' ORDER BY version",
    )
    .fetch_all(api.db.pool())
    .await
    .unwrap();
    assert_eq!(
        versions,
        (1..=versions.len() as i64).collect::<Vec<_>>(),
        "no gaps"
    );
}
