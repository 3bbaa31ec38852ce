//! Small builders for synthetic events and appends.

use bytes::Bytes;
use noroshi_event_store::{
    AppendRequest, ExpectedVersion, NewEvent, Prefecture, StreamId, StreamWrite,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// Yamaguchi, the demo prefecture.
pub fn yamaguchi() -> Prefecture {
    Prefecture::parse("35").expect("35 is a prefecture code")
}

pub fn stream(id: &str) -> StreamId {
    StreamId::parse(id).expect("valid stream id in test")
}

/// A synthetic event whose payload says which stream and sequence it was made for.
pub fn event(label: &str) -> NewEvent {
    NewEvent::new(
        "noroshi.v1.TestEvent",
        OffsetDateTime::now_utc(),
        Bytes::from(label.as_bytes().to_vec()),
    )
}

pub fn write(stream_id: &str, expected: ExpectedVersion, count: usize) -> StreamWrite {
    StreamWrite {
        stream_id: stream(stream_id),
        expected,
        events: (0..count)
            .map(|i| event(&format!("{stream_id}#{i}")))
            .collect(),
    }
}

/// An append of `streams` under a fresh command id.
pub fn append(streams: Vec<StreamWrite>) -> AppendRequest {
    AppendRequest {
        command_id: Uuid::now_v7(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: "test-actor".to_owned(),
        prefecture: yamaguchi(),
        streams,
        request_digest: None,
    }
}

/// 防府市, in the jurisdiction of the test world's Hofu health center (`api::HC`).
const HOFU: &str = "352063";

/// A case file of the Hofu health center: a fictional patient per row, `rows` rows, dates
/// in 和暦 or 西暦.
pub fn case_file(rows: usize, japanese_era: bool) -> String {
    let mut text = String::from(
        "HER-SYS ID,氏名,フリガナ,生年月日,性別,電話番号,住所,市町村コード,重症度,基礎疾患,備考\n",
    );
    for n in 1..=rows {
        let (year, month, day) = (1940 + (n % 60), 1 + n % 12, 1 + n % 28);
        let born = if japanese_era {
            match year {
                ..=1988 => format!("昭和{}年{month}月{day}日", year - 1925),
                _ => format!("平成{}年{month}月{day}日", year - 1988),
            }
        } else {
            format!("{year}/{month:02}/{day:02}")
        };
        let sex = if n % 2 == 0 { "女" } else { "男" };
        let severity = ["軽症", "中等症Ⅰ", "中等症Ⅱ", "無症状"][n % 4];
        let risks = if n % 3 == 0 {
            "糖尿病・65歳以上"
        } else {
            ""
        };
        text.push_str(&format!(
            "T-{n:05},試験 患者{n},シケン カンジャ,{born},{sex},0835-00-{:04},防府市試験町{n},{hofu},{severity},{risks},\n",
            n % 10_000,
            hofu = HOFU,
        ));
    }
    text
}
