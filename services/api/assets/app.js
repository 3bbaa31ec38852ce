// noroshi web UI: each page fills itself from the HTTP API (the same API and rules as
// every other client) and stays live through Server-Sent Events. No framework, no build.
// Data is always put in the page as text (textContent), never as HTML.
'use strict';

const I18N = {
  ja: {
    'lang.switch': 'English', logout: 'ログアウト', none: 'なし', all: 'すべて',
    'role.CONSULT_CENTER': '遠隔診療支援センター', 'role.TEMPORARY': '臨時の医療施設', 'role.CLINIC': '診療所',
    'role.MOBILE_CLINIC': '移動診療車',
    'cc.queue': '遠隔診療の依頼（緊急度・待ち時間順）', 'cc.urgency': '緊急度', 'cc.mode': '形態', 'cc.requester': '依頼元',
    'cc.schedule': '日時を決めて受ける', 'cc.scheduled_for': '診察日時', 'cc.doctor': '担当医', 'cc.take': '受ける',
    'cc.start': '診察を開始', 'cc.complete': '診察の結果', 'cc.findings': '所見', 'cc.recommendation': '推奨',
    'cc.escalate_category': '入院調整を依頼する病床区分', 'cc.follow_up_at': '再診日時', 'cc.save_result': '結果を記録',
    'cc.missed': '来なかった（未実施）', 'cc.open': '開く', 'cc.question': '相談内容', 'cc.contact': '連絡先',
    'cc.history': '経過', 'cc.history_all': '経過をすべて見る',
    'cc.deidentified': '受けるまで患者は特定されません', 'cc.none': '依頼はありません', 'cc.escalated': '入院調整を依頼済み',
    'cc.request': '遠隔診療の依頼', 'cc.request_button': '依頼する', 'cc.contact_hint': '会議URLまたは電話番号',
    'cc.consults': '遠隔診療', 'cc.escalate': '入院調整を依頼',
    'urgency.ROUTINE': '通常', 'urgency.URGENT': '至急', 'urgency.EMERGENCY': '緊急',
    'mode.D_TO_P_WITH_N': 'D to P with N', 'mode.D_TO_D': 'D to D', 'mode.D_TO_P': 'D to P',
    'rec.CONTINUE': '現在の療養を継続', 'rec.ESCALATE': '入院が必要', 'rec.PRESCRIBE': '処方', 'rec.FOLLOW_UP': '再診',
    'status.SCHEDULED': '予定', 'status.IN_PROGRESS': '診察中', 'status.COMPLETED': '完了', 'status.MISSED': '未実施',
    'ev.ConsultOpened': '遠隔診療の依頼', 'ev.ConsultClosed': '遠隔診療の終了', 'ev.TransferRequested': '転院・入院の依頼',
    'ev.TransferCancelled': '転院・入院の依頼の取消',
    'live.connecting': '接続中', 'live.live': 'ライブ', 'live.reconnecting': '再接続中',
    'role.HQ': '入院調整本部', 'role.HEALTH_CENTER': '保健所', 'role.HOSPITAL': '医療機関',
    'role.HOTEL': '宿泊療養施設', 'role.PUBLIC': '一般', 'role.ADMIN': '管理者',
    'forbidden.title': 'このページは表示できません', 'forbidden.text': 'ご自身の組織のページのみ表示できます。',
    'forbidden.home': '自分のページへ',
    'login.title': 'ログイン', 'login.username': 'ユーザー名', 'login.password': 'パスワード', 'login.submit': 'ログイン',
    'login.error.wrong': 'ユーザー名またはパスワードが違います。',
    'login.error.locked': 'ログインの失敗が続いたため、アカウントをロックしました。しばらく待つか、管理者にパスワードの再設定を依頼してください。',
    'login.error.throttled': 'この端末からのログインの試行が多すぎます。1分ほど待ってから試してください。',
    'hq.alerts': 'アラート', 'hq.rules': 'アラートの基準', 'hq.rule_occupancy': '病床使用率（確保病床に対する入院中）',
    'hq.rule_warning': '注意（%）', 'hq.rule_critical': '重大（%）', 'hq.rule_waiting': '入院調整待ちの上限',
    'hq.rule_minutes': '分', 'hq.rule_stale': '病床数の報告が途絶えたとみなすまで', 'hq.rule_hours': '時間', 'hq.rule_escalation': '未確認の重大アラートを本部へ上げるまで', 'hq.every_area': '全域（個別の設定のない医療圏）', 'al.none': 'アラートはありません', 'al.ack': '確認', 'al.ack_note': '対応メモ',
    'al.acked': '確認済み', 'al.resolved': '解消', 'al.escalated': '本部へ通知済み', 'al.by': '確認者',
    'akind.OFFER_DEADLINE_NEAR': '回答期限が近い打診', 'akind.OFFER_EXPIRED': '期限切れの打診', 'akind.HOLD_OVERDUE': '確保期限を過ぎた病床',
    'akind.TRANSPORT_LATE': '迎車時刻を過ぎても未出発', 'akind.WAITING_TOO_LONG': '入院調整待ちが長い', 'akind.CAPACITY_STALE': '病床報告が古い',
    'akind.OCCUPANCY_THRESHOLD': '病床使用率が基準超え', 'akind.DETERIORATION': '容体悪化', 'akind.CONSULT_UNANSWERED': '未受付の遠隔診療依頼',
    'akind.BED_MISMATCH': '病床数の不一致', 'asev.CRITICAL': '重大', 'asev.WARNING': '注意', 'asev.INFO': '情報',
    'notify.off': '通知をオンにする', 'notify.on': '通知: オン（ミュートする）', 'notify.muted': '通知: ミュート中（オンにする）',
    'notify.denied': '通知はブラウザで拒否されています', 'notify.offer': '新しい受入打診', 'notify.consult': '新しい遠隔診療の依頼',
    'notify.critical': '重大なアラート', 'hq.bedboard': '病床状況（医療圏別）', 'hq.queue': '入院調整待ち（優先度・待ち時間順）',
    'hq.offer': '受入打診', 'hq.proxy': '代行入力（病床数）', 'hq.choose': '打診先を選ぶ', 'hq.offer_to': '打診する',
    'hq.no_candidates': '条件に合う空床がありません', 'hq.offer_for': '打診対象',
    'hc.cases': '担当患者', 'dl.beds': '病床状況（CSV）', 'dl.sjis': 'Shift_JIS 版', 'dl.cases': '患者一覧（CSV・閲覧記録が残ります）', 'dl.open': 'オープンデータ（CSV）', 'dl.placements': '入院調整の記録（CSV）', 'imp.title': 'ファイルから取り込む', 'imp.capacity_title': '病床数をファイルから取り込む', 'imp.capacity_help': '病床区分ごとの確保病床数・即応病床数・入院（入所）者数の CSV（病床状況の CSV のままでも可、UTF-8 または Shift_JIS）。まず内容を確認し、問題のない行だけを登録します。', 'imp.capacity_title_hq': '病床数をファイルから取り込む（代行入力）', 'imp.capacity_help_hq': '各医療機関の病床数の CSV（病床状況の CSV のままでも可）。医療機関に代わって登録され、代行入力として記録されます。まず内容を確認し、問題のない行だけを登録します。', 'imp.help': 'HER-SYS の出力や表計算の CSV（UTF-8 または Shift_JIS、和暦も可）。まず内容を確認し、問題のない行だけを登録します。同じファイルを再度取り込んでも重複しません。', 'imp.file': 'CSV ファイル', 'imp.encoding': '文字コード', 'imp.auto': '自動判定', 'imp.check': '内容を確認（まだ登録しません）', 'imp.run': '問題のない {n} 件を登録する', 'imp.reading': '{n} 行を確認済み…', 'imp.no_file': 'ファイルを選んでください', 'imp.checked': '確認しました（まだ登録していません）: 全 {rows} 行、新規 {created}、登録済み {present}、取り込めない行 {refused}', 'imp.done': '登録しました: 全 {rows} 行、新規 {created}、登録済み {present}、取り込めない行 {refused}', 'imp.stopped': 'ファイルの途中で止まりました: {why}', 'imp.line': '行', 'imp.column': '列', 'imp.field': '項目', 'imp.problem': '内容', 'imp.more': '他 {n} 件', 'hc.report': '新規患者の報告', 'hc.observe': '観察記録', 'hc.request': '入院調整の依頼',
    'hc.transport': '搬送手配', 'hc.close': '終了', 'hc.open': '開く', 'hc.departure': '出発',
    'hc.search': '氏名・ふりがな・HER-SYS ID で検索', 'hc.scope': '表示', 'hc.scope_open': '対応中の患者',
    'hc.scope_all': '終了した患者も含む', 'hc.count': '$1 / $2 件', external_ref: 'HER-SYS ID',
    'hc.gone': 'この患者は一覧の表示条件から外れました（終了など）。「終了した患者も含む」で表示できます。',
    'hc.home_care': '自宅療養', 'hc.start_home_care': '自宅療養とする', 'hc.cancel': '入院調整の取消',
    'hc.care_site': '在宅での担当（診療所・移動診療車）', 'hc.care_site_id': '担当', 'hc.care_site_none': '担当なし',
    'hc.cared_by': '担当', 'fac.cared': '在宅で担当する患者', 'fac.no_cared': '担当する患者はいません', 'last_observed': '最終観察',
    'hc.cancel_placement': '入院調整を取り消す', cancel_reason: '取消の理由',
    'hq.cancel': '入院調整の取消', 'hq.cancel_button': '取消',
    'map.title': '医療圏の地図（模式図）', 'map.note': '模式図：8つの二次医療圏をおおよその位置に並べ、病床使用率で色分けしています。医療圏を押すとその行へ移ります。', 'map.free': '空床', 'map.rate': '使用率', 'map.low': '50%未満', 'map.mid': '50%以上70%未満', 'map.high': '70%以上', 'map.none': '確保病床なし', 'map.category': '病床区分', 'map.secured': '確保', 'map.occupied': '入院中',
    'rc.title': '病床数の突合（報告と noroshi が把握している患者）', 'rc.help': '報告された入院中の数が、noroshi で受け入れて入院中の患者より少ない医療機関（空いているように見えて実際は埋まっている病床）。30分続くとアラートになります。', 'rc.occupied': '報告上の入院中', 'rc.patients': '把握している入院患者', 'rc.held': '確保中', 'rc.since': 'いつから', 'rc.none': '食い違いはありません', 'rc.own_title': '病床数の報告を確認してください', 'rc.own': '{cat}: 報告上の入院中は {occupied} 床ですが、noroshi で受け入れて入院中の患者は {patients} 人です（{since} から）。病床数を更新してください。',
    'sla.title': '入院までの時間（直近2週間）', 'sla.report': '振り返り報告書（直近2週間・印刷して PDF に）', 'sla.help': '依頼から初回の打診、受入決定、到着までの時間（中央値と90パーセンタイル）。', 'sla.day': '依頼日', 'sla.requested': '依頼', 'sla.to_offer': '打診まで', 'sla.to_accept': '受入決定まで', 'sla.to_arrive': '到着まで', 'sla.cancelled': '取消', 'sla.by_reason': '辞退の理由', 'sla.by_facility': '辞退した医療機関', 'sla.none': 'まだありません', 'sla.expired': '回答なしで期限切れ', 'sla.p50': '中央値', 'sla.p90': '90%', 'sla.chart': '依頼からの時間（分）', 'severity': '重症度',
    'rv.title': '振り返り（過去の状況を再生）', 'rv.help': '期間を選び、時刻のスライダーを動かすと、その時点の入院調整待ちと病床状況を表示します（操作はできません）。', 'rv.from': '開始', 'rv.to': '終了', 'rv.moment': '時刻', 'rv.start': '振り返る', 'rv.play': '再生', 'rv.pause': '一時停止', 'rv.live': '最新の状況に戻る', 'rv.at': '{t} 時点の状況（振り返り表示中・操作はできません）', 'rv.order': '開始は終了より前にしてください', 'rv.future': '終了は現在より前にしてください',
    'hq.priority': '優先度の変更', 'hq.priority_button': '優先度', 'hq.priority_save': '優先度を変更する',
    'hq.priority_note': '保健所が再トリアージすると、計算による優先度に戻ります。',
    reason: '理由', 'timeline.case': '患者', 'timeline.placement': '入院調整',
    priority_reason: '変更の理由', 'priority.1': '1（最優先）', 'priority.5': '5（最も低い）', overridden: '本部変更',
    'hc.record_departure': '出発を記録', 'hc.triage': 'トリアージ（重症度の見直し）', note: 'メモ',
    'fac.acceptance': '受入状況', acceptance: '受入', constraints: '制限の理由',
    'constraint.STAFF': '人員', 'constraint.ROOMS': '病室', 'constraint.EQUIPMENT': '設備', 'constraint.INFECTION_CONTROL': '感染対策',
    'fac.declare': '病床数の報告', 'fac.capacity': '現在の病床', 'fac.offers': '受入打診', 'fac.inbound': '入院予定', 'fac.placed': '入院中',
    'fac.accept': '受け入れる', 'fac.decline': '断る', 'fac.decline_reason': '断る理由', 'fac.arrived': '到着を記録',
    'fac.discharge': '退院', 'fac.no_offers': '打診はありません',
    'fac.inbound@HOTEL': '入所予定', 'fac.placed@HOTEL': '療養中', 'fac.discharge@HOTEL': '退所',
    'fac.declare@HOTEL': '居室数の報告', 'fac.capacity@HOTEL': '現在の居室',
    'occupied@HOTEL': '使用中', 'fac.moving_on': '転出の調整', 'fac.open': '観察・依頼',
    'fac.escalate': '転院・下り搬送の依頼', 'fac.escalate@HOTEL': '入院の依頼（悪化時）',
    'fac.escalate_note': '転出先に到着するまで、この病床は確保されたままです。',
    'fac.escalate_note@HOTEL': '入院先に到着するまで、この居室は確保されたままです。',
    'fac.moving_to': '→', 'fac.moving_live': '転出の調整中のため、退院・退所は到着時に自動で記録されます。',
    'pub.title': '病床の状況（公開統計）', 'pub.note': '少数の人数と、そこから少数が割り出せる数は、個人が特定されないよう表示していません（—）。',
    category: '病床区分', 'cat.SEVERE': '重症', 'cat.MODERATE': '中等症', 'cat.MILD': '軽症', 'cat.HOTEL_ROOM': '宿泊療養',
    secured: '確保病床', ready: '即応病床', occupied: '入院中', held: '確保中', available: '空床', occupancy: '使用率',
    declared_at: '最終報告',
    priority: '優先度', needs: '必要な対応', origin: '発生元', waiting: '待ち時間', status: '状態',
    facility_id: '施設ID', facility: '施設', proxy_reason: '代行理由', save: '登録', declare: '報告する', report: '報告',
    request: '依頼', arrange: '手配', close: '終了する', timeline: '経過', name: '氏名', name_kana: 'ふりがな',
    age: '年齢', age_band: '年代', sex: '性別', 'sex.FEMALE': '女性', 'sex.MALE': '男性', 'sex.OTHER': 'その他',
    birth_date: '生年月日', phone: '電話', address: '住所', municipality: '市区町村', choose: '選んでください', severity: '重症度',
    'sev.ASYMPTOMATIC': '無症状', 'sev.MILD': '軽症', 'sev.MODERATE_I': '中等症I', 'sev.MODERATE_II': '中等症II', 'sev.SEVERE': '重症',
    placement: '入院調整', temperature: '体温 (℃)', on_oxygen: '酸素投与中', vehicle: '車両', pickup_at: '迎車時刻',
    'vehicle.AMBULANCE': '救急車', 'vehicle.HEALTH_CENTER_VEHICLE': '保健所車両', 'vehicle.PRIVATE': '自家用車', 'vehicle.OTHER': 'その他',
    'discharge.RECOVERED': '回復', 'discharge.STEP_DOWN': '下り搬送（より軽い療養先へ）',
    'discharge.TRANSFER': '転院・搬送（悪化など）', 'discharge.DECEASED': '死亡',
    outcome: '転帰', 'outcome.RECOVERED': '回復', 'outcome.TRANSFERRED_OUT': '管外転出', 'outcome.DECEASED': '死亡',
    deadline: '回答期限', arrived_at: '到着', stale: '報告が古い', overflow: '超過', overdue: '期限超過',
    soon: '期限間近', declined: '辞退済み', same_area: '同じ医療圏', near_area: '隣接医療圏', deteriorated: '悪化', never: '未報告',
    'ok.saved': '登録しました', 'ok.done': '完了しました', 'error.field': '入力を確認してください',
    'error.failed': '処理できませんでした', 'error.network': '通信できませんでした。入力内容はそのままです。',
    'status.REPORTED': '報告済み', 'status.HOME_CARE': '自宅療養', 'status.AWAITING_PLACEMENT': '調整待ち',
    'status.PLACEMENT_IN_PROGRESS': '調整中', 'status.HOSPITALIZED': '入院中', 'status.IN_HOTEL': '宿泊療養中',
    'status.RECOVERED': '回復', 'status.DECEASED': '死亡', 'status.TRANSFERRED_OUT': '転出',
    'status.REQUESTED': '依頼済み', 'status.OFFERED': '打診中', 'status.ACCEPTED': '受入決定',
    'status.TRANSPORT_ARRANGED': '搬送手配済み', 'status.IN_TRANSIT': '搬送中', 'status.ARRIVED': '到着',
    'status.CANCELLED': '取消', 'origin.HOME': '自宅', 'origin.FACILITY': '転院',
    risk_factors: 'リスク因子', 'hc.more_needs': '追加で必要な対応',
    'risk.AGE_65_PLUS': '65歳以上', 'risk.DIABETES': '糖尿病', 'risk.CHRONIC_LUNG': '慢性呼吸器疾患', 'risk.CHRONIC_KIDNEY': '慢性腎臓病', 'risk.DIALYSIS': '透析中', 'risk.PREGNANCY': '妊娠', 'risk.IMMUNOSUPPRESSED': '免疫抑制', 'risk.OBESITY': '肥満', 'risk.CARDIOVASCULAR': '心血管疾患',
    'cap.OXYGEN': '酸素投与', 'cap.VENTILATOR': '人工呼吸器', 'cap.ECMO': 'ECMO', 'cap.DIALYSIS': '透析', 'cap.PEDIATRIC': '小児', 'cap.PERINATAL': '周産期', 'cap.PSYCHIATRIC': '精神科', 'cap.DEMENTIA_CARE': '認知症対応',
    'ev.CaseReported': '患者の報告', 'ev.CaseTriaged': 'トリアージ', 'ev.PriorityOverridden': '優先度の変更', 'ev.ObservationRecorded': '健康観察',
    'ev.DeteriorationFlagged': '悪化の報告', 'ev.HomeCareStarted': '自宅療養の開始', 'ev.CareSiteAssigned': '在宅での担当の変更', 'ev.CaseStatusChanged': '状態の変更', 'ev.CaseClosed': '終了',
    'ev.PlacementRequested': '入院調整の依頼', 'ev.PlacementOffered': '受入打診', 'ev.PlacementAccepted': '受入決定', 'ev.PlacementDeclined': '受入辞退',
    'ev.OfferExpired': '打診の期限切れ', 'ev.TransportArranged': '搬送手配', 'ev.PatientDeparted': '出発', 'ev.PatientArrived': '到着',
    'ev.PlacementCancelled': '入院調整の取消', 'ev.PatientDischarged': '退院・退所',
    'acc.ACCEPTING': '受入可', 'acc.LIMITED': '制限あり', 'acc.NOT_ACCEPTING': '受入停止',
    minutes: '分', hours: '時間', prefecture: '県全体', area: '医療圏', 'nav.admin': '管理',
    'adm.users': '利用者', 'adm.display_name': '表示名', 'adm.organisation': '組織', 'adm.role': '役割',
    'adm.new_user': '利用者の追加', 'adm.first_password': '初期パスワード（12文字以上）', 'adm.add': '追加',
    'adm.clients': 'APIクライアント', 'adm.client_name': '名前', 'adm.scopes': '範囲（カンマ区切り: facilities, cases, placements, views）',
    'adm.expires_days': '有効日数', 'adm.issue': '発行', 'adm.token_once': 'このトークンは今だけ表示されます。安全に保管してください: ',
    'adm.revoke': '失効', 'adm.revoked': '失効済み', 'adm.audit': '監査ログ', 'adm.case_id': '患者ID',
    'adm.webhooks': 'Webhook（アラートの送信先）', 'adm.webhook_url': '送信先URL（https）',
    'adm.webhook_kinds': 'アラートの種類（カンマ区切り、空欄はすべて）', 'adm.register': '登録',
    'adm.secret_once': '署名用シークレット（この一度だけ表示されます）: ', 'adm.failing': '送信失敗が続いています',
    'adm.pending': '未送信', 'adm.delete': '削除', 'adm.deliveries': '送信記録',
    'adm.principal': '利用者（例 user:demo-hc）', 'adm.kind': '種類（例 PII_READ）', 'adm.search': '検索', 'adm.csv': 'CSVで書き出す',
    'adm.at': '日時', 'adm.kind_short': '種類', 'adm.principal_short': '利用者', 'adm.via': '経路', 'adm.case_short': '患者',
    'adm.disable': '無効にする', 'adm.enable': '有効にする', 'adm.disabled': '無効', 'adm.locked': 'ロック中', 'adm.active': '有効',
    'adm.reset': 'パスワード再設定', 'adm.new_password': '新しいパスワード', 'adm.expires': '期限',
  },
  en: {
    'lang.switch': '日本語', logout: 'Log out', none: 'None', all: 'All',
    'role.CONSULT_CENTER': 'Consult center', 'role.TEMPORARY': 'Temporary facility', 'role.CLINIC': 'Clinic',
    'role.MOBILE_CLINIC': 'Mobile clinic',
    'cc.queue': 'Consult requests (by urgency and waiting time)', 'cc.urgency': 'Urgency', 'cc.mode': 'Mode', 'cc.requester': 'From',
    'cc.schedule': 'Take it: time and doctor', 'cc.scheduled_for': 'Time', 'cc.doctor': 'Doctor', 'cc.take': 'Take',
    'cc.start': 'Start the consult', 'cc.complete': 'Result', 'cc.findings': 'Findings', 'cc.recommendation': 'Recommendation',
    'cc.escalate_category': 'Bed category for the placement request', 'cc.follow_up_at': 'Follow-up', 'cc.save_result': 'Record the result',
    'cc.missed': 'Did not take place', 'cc.open': 'Open', 'cc.question': 'Question', 'cc.contact': 'Contact',
    'cc.history': 'History', 'cc.history_all': 'The whole history',
    'cc.deidentified': 'The patient is identified once you take it', 'cc.none': 'No requests', 'cc.escalated': 'Placement requested',
    'cc.request': 'Request a remote consult', 'cc.request_button': 'Request', 'cc.contact_hint': 'Meeting link or phone number',
    'cc.consults': 'Remote consults', 'cc.escalate': 'Request a placement',
    'urgency.ROUTINE': 'Routine', 'urgency.URGENT': 'Urgent', 'urgency.EMERGENCY': 'Emergency',
    'mode.D_TO_P_WITH_N': 'D to P with N', 'mode.D_TO_D': 'D to D', 'mode.D_TO_P': 'D to P',
    'rec.CONTINUE': 'Continue', 'rec.ESCALATE': 'Escalate', 'rec.PRESCRIBE': 'Prescribe', 'rec.FOLLOW_UP': 'Follow up',
    'status.SCHEDULED': 'Scheduled', 'status.IN_PROGRESS': 'In progress', 'status.COMPLETED': 'Completed', 'status.MISSED': 'Missed',
    'ev.ConsultOpened': 'Consult requested', 'ev.ConsultClosed': 'Consult ended', 'ev.TransferRequested': 'Transfer requested',
    'ev.TransferCancelled': 'Transfer cancelled',
    'live.connecting': 'Connecting', 'live.live': 'Live', 'live.reconnecting': 'Reconnecting',
    'role.HQ': 'Coordination HQ', 'role.HEALTH_CENTER': 'Health center', 'role.HOSPITAL': 'Hospital',
    'role.HOTEL': 'Recovery hotel', 'role.PUBLIC': 'Public', 'role.ADMIN': 'Administrator',
    'forbidden.title': 'This page is not available', 'forbidden.text': 'You can open only your own organisation\'s pages.',
    'forbidden.home': 'Go to my page',
    'login.title': 'Log in', 'login.username': 'Username', 'login.password': 'Password', 'login.submit': 'Log in',
    'login.error.wrong': 'Wrong username or password.',
    'login.error.locked': 'Too many failed logins: the account is locked for a while, or until an administrator resets its password.',
    'login.error.throttled': 'Too many login attempts from this device. Wait a minute and try again.',
    'hq.alerts': 'Alerts', 'hq.rules': 'Alert thresholds', 'hq.rule_occupancy': 'Occupancy (occupied of secured beds)',
    'hq.rule_warning': 'Warning (%)', 'hq.rule_critical': 'Critical (%)', 'hq.rule_waiting': 'Longest wait for a bed',
    'hq.rule_minutes': 'Minutes', 'hq.rule_stale': 'A facility without a capacity report is stale after', 'hq.rule_hours': 'Hours', 'hq.rule_escalation': 'Unacknowledged critical alerts reach HQ after', 'hq.every_area': 'Every area without its own rule', 'al.none': 'No alerts', 'al.ack': 'Acknowledge', 'al.ack_note': 'What was done',
    'al.acked': 'Acknowledged', 'al.resolved': 'Resolved', 'al.escalated': 'Escalated to HQ', 'al.by': 'by',
    'akind.OFFER_DEADLINE_NEAR': 'Offer deadline near', 'akind.OFFER_EXPIRED': 'Offer expired', 'akind.HOLD_OVERDUE': 'Bed held past its deadline',
    'akind.TRANSPORT_LATE': 'Pickup time passed, no departure', 'akind.WAITING_TOO_LONG': 'Waiting too long for a bed', 'akind.CAPACITY_STALE': 'Capacity report stale',
    'akind.OCCUPANCY_THRESHOLD': 'Occupancy over threshold', 'akind.DETERIORATION': 'Patient deteriorating', 'akind.CONSULT_UNANSWERED': 'Consult request not taken',
    'akind.BED_MISMATCH': 'Bed figures do not match', 'asev.CRITICAL': 'Critical', 'asev.WARNING': 'Warning', 'asev.INFO': 'Info',
    'notify.off': 'Turn notifications on', 'notify.on': 'Notifications on (mute)', 'notify.muted': 'Notifications muted (turn on)',
    'notify.denied': 'Notifications are blocked in the browser', 'notify.offer': 'New offer', 'notify.consult': 'New consult request',
    'notify.critical': 'Critical alert', 'hq.bedboard': 'Beds by medical area', 'hq.queue': 'Waiting for a bed (by priority and waiting time)',
    'hq.offer': 'Offer', 'hq.proxy': 'Proxy capacity entry', 'hq.choose': 'Choose where to offer', 'hq.offer_to': 'Offer',
    'hq.no_candidates': 'No facility with a free bed fits', 'hq.offer_for': 'Offer for',
    'hc.cases': 'Our cases', 'dl.beds': 'Bed board (CSV)', 'dl.sjis': 'Shift_JIS', 'dl.cases': 'Cases (CSV; the download is audited)', 'dl.open': 'Open data (CSV)', 'dl.placements': 'Placement log (CSV)', 'imp.title': 'Import from a file', 'imp.capacity_title': 'Import bed figures from a file', 'imp.capacity_help': 'A CSV of secured, ready and occupied beds by category (the bed board CSV as it is will do; UTF-8 or Shift_JIS). Check it first; only rows without problems are recorded.', 'imp.capacity_title_hq': 'Import bed figures from a file (on behalf of facilities)', 'imp.capacity_help_hq': 'A CSV of every facility\'s beds (the bed board CSV as it is will do), recorded on the facilities\' behalf as proxy entries. Check it first; only rows without problems are recorded.', 'imp.help': 'A CSV from HER-SYS or a spreadsheet (UTF-8 or Shift_JIS, Japanese era dates too). Check it first; only rows without problems are recorded. Importing the same file again adds nothing.', 'imp.file': 'CSV file', 'imp.encoding': 'Encoding', 'imp.auto': 'Detect', 'imp.check': 'Check the file (nothing is recorded yet)', 'imp.run': 'Record the {n} rows without problems', 'imp.reading': '{n} rows checked…', 'imp.no_file': 'Choose a file', 'imp.checked': 'Checked, nothing recorded yet: {rows} rows, {created} new, {present} already recorded, {refused} with problems', 'imp.done': 'Recorded: {rows} rows, {created} new, {present} already recorded, {refused} with problems', 'imp.stopped': 'The file stopped part-way: {why}', 'imp.line': 'Line', 'imp.column': 'Column', 'imp.field': 'Field', 'imp.problem': 'Problem', 'imp.more': '{n} more', 'hc.report': 'Report a case', 'hc.observe': 'Observation', 'hc.request': 'Request a placement',
    'hc.transport': 'Arrange transport', 'hc.close': 'Close', 'hc.open': 'Open', 'hc.departure': 'Departure',
    'hc.search': 'Search by name, kana or HER-SYS ID', 'hc.scope': 'Show', 'hc.scope_open': 'Open cases',
    'hc.scope_all': 'Closed cases too', 'hc.count': '$1 of $2', external_ref: 'HER-SYS ID',
    'hc.gone': 'This patient is no longer on the board as shown (closed, for instance). Choose “Closed cases too” to see them.',
    'hc.home_care': 'Home care', 'hc.start_home_care': 'Start home care', 'hc.cancel': 'Cancel the placement',
    'hc.care_site': 'Care at home (clinic or mobile clinic)', 'hc.care_site_id': 'Cared for by', 'hc.care_site_none': 'Nobody',
    'hc.cared_by': 'cared for by', 'fac.cared': 'Patients at home in our care', 'fac.no_cared': 'No patient in our care', 'last_observed': 'Last observed',
    'hc.cancel_placement': 'Cancel the placement', cancel_reason: 'Reason for cancelling',
    'hq.cancel': 'Cancel the placement', 'hq.cancel_button': 'Cancel',
    'map.title': 'Map of the medical areas (schematic)', 'map.note': 'Schematic: the eight secondary medical areas in their rough places, coloured by occupancy. Choose an area to go to its rows.', 'map.free': 'Free', 'map.rate': 'Occupancy', 'map.low': 'Under 50%', 'map.mid': '50% to 70%', 'map.high': '70% or more', 'map.none': 'No secured beds', 'map.category': 'Bed category', 'map.secured': 'Secured', 'map.occupied': 'Occupied',
    'rc.title': 'Bed figures against the patients noroshi knows of', 'rc.help': 'Facilities that report fewer occupied beds than patients placed there through noroshi and present (beds that look free but are not). After 30 minutes this becomes an alert.', 'rc.occupied': 'Reported occupied', 'rc.patients': 'Patients placed and present', 'rc.held': 'Held', 'rc.since': 'Since', 'rc.none': 'No disagreements', 'rc.own_title': 'Please check your bed figures', 'rc.own': '{cat}: you report {occupied} occupied beds, but {patients} patients placed here through noroshi are present (since {since}). Please update your figures.',
    'sla.title': 'Time to a bed (last two weeks)', 'sla.report': 'After-action report (last two weeks; print it to PDF)', 'sla.help': 'From the request to the first offer, to the acceptance and to the arrival (median and 90th percentile).', 'sla.day': 'Requested on', 'sla.requested': 'Requests', 'sla.to_offer': 'To offer', 'sla.to_accept': 'To acceptance', 'sla.to_arrive': 'To arrival', 'sla.cancelled': 'Cancelled', 'sla.by_reason': 'Declines by reason', 'sla.by_facility': 'Declines by facility', 'sla.none': 'None yet', 'sla.expired': 'Expired without an answer', 'sla.p50': 'Median', 'sla.p90': '90%', 'sla.chart': 'Minutes since the request', 'severity': 'Severity',
    'rv.title': 'Review (replay a past period)', 'rv.help': 'Choose a period and move the time slider to see the queue and the beds as they were then (nothing can be changed).', 'rv.from': 'From', 'rv.to': 'To', 'rv.moment': 'Moment', 'rv.start': 'Review', 'rv.play': 'Play', 'rv.pause': 'Pause', 'rv.live': 'Back to the present', 'rv.at': 'As of {t} (review; nothing can be changed)', 'rv.order': 'The start must come before the end', 'rv.future': 'The end must not be in the future',
    'hq.priority': 'Change the priority', 'hq.priority_button': 'Priority', 'hq.priority_save': 'Change the priority',
    'hq.priority_note': 'A new triage by the health center sets the computed priority again.',
    reason: 'Reason', 'timeline.case': 'Case', 'timeline.placement': 'Placement',
    priority_reason: 'Reason for the change', 'priority.1': '1 (most urgent)', 'priority.5': '5 (least urgent)', overridden: 'set by HQ',
    'hc.record_departure': 'Record departure', 'hc.triage': 'Triage (review severity)', note: 'Note',
    'fac.acceptance': 'Acceptance', acceptance: 'Accepting', constraints: 'Limited by',
    'constraint.STAFF': 'Staff', 'constraint.ROOMS': 'Rooms', 'constraint.EQUIPMENT': 'Equipment', 'constraint.INFECTION_CONTROL': 'Infection control',
    'fac.declare': 'Declare capacity', 'fac.capacity': 'Current beds', 'fac.offers': 'Offers', 'fac.inbound': 'Inbound', 'fac.placed': 'Admitted',
    'fac.accept': 'Accept', 'fac.decline': 'Decline', 'fac.decline_reason': 'Reason', 'fac.arrived': 'Record arrival',
    'fac.discharge': 'Discharge', 'fac.no_offers': 'No offers',
    'fac.inbound@HOTEL': 'Arriving residents', 'fac.placed@HOTEL': 'Residents', 'fac.discharge@HOTEL': 'Check out',
    'fac.declare@HOTEL': 'Declare rooms', 'fac.capacity@HOTEL': 'Current rooms',
    'occupied@HOTEL': 'In use', 'fac.moving_on': 'Moving on', 'fac.open': 'Observe / request',
    'fac.escalate': 'Request a transfer or step-down', 'fac.escalate@HOTEL': 'Request a hospital bed (deterioration)',
    'fac.escalate_note': 'The bed here stays occupied until the patient arrives at the next.',
    'fac.escalate_note@HOTEL': 'The room stays occupied until the resident arrives at the hospital.',
    'fac.moving_to': '→', 'fac.moving_live': 'Moving on: the discharge here is recorded by itself on arrival.',
    'pub.title': 'Beds (public statistics)', 'pub.note': 'Small counts of people, and counts from which a small one could be worked out, are not shown (—), so that nobody can be identified.',
    category: 'Category', 'cat.SEVERE': 'Severe', 'cat.MODERATE': 'Moderate', 'cat.MILD': 'Mild', 'cat.HOTEL_ROOM': 'Hotel room',
    secured: 'Secured', ready: 'Ready', occupied: 'Occupied', held: 'Held', available: 'Available', occupancy: 'Occupancy',
    declared_at: 'Last report',
    priority: 'Priority', needs: 'Needs', origin: 'From', waiting: 'Waiting', status: 'Status',
    facility_id: 'Facility id', facility: 'Facility', proxy_reason: 'Proxy reason', save: 'Save', declare: 'Declare', report: 'Report',
    request: 'Request', arrange: 'Arrange', close: 'Close case', timeline: 'Timeline', name: 'Name', name_kana: 'Name (kana)',
    age: 'Age', age_band: 'Age band', sex: 'Sex', 'sex.FEMALE': 'Female', 'sex.MALE': 'Male', 'sex.OTHER': 'Other',
    birth_date: 'Birth date', phone: 'Phone', address: 'Address', municipality: 'Municipality', choose: 'Choose', severity: 'Severity',
    'sev.ASYMPTOMATIC': 'Asymptomatic', 'sev.MILD': 'Mild', 'sev.MODERATE_I': 'Moderate I', 'sev.MODERATE_II': 'Moderate II', 'sev.SEVERE': 'Severe',
    placement: 'Placement', temperature: 'Temperature (°C)', on_oxygen: 'On oxygen', vehicle: 'Vehicle', pickup_at: 'Pickup',
    'vehicle.AMBULANCE': 'Ambulance', 'vehicle.HEALTH_CENTER_VEHICLE': 'Health center vehicle', 'vehicle.PRIVATE': 'Private car', 'vehicle.OTHER': 'Other',
    'discharge.RECOVERED': 'Recovered', 'discharge.STEP_DOWN': 'Step-down (to lighter care)',
    'discharge.TRANSFER': 'Transfer (deterioration, …)', 'discharge.DECEASED': 'Deceased',
    outcome: 'Outcome', 'outcome.RECOVERED': 'Recovered', 'outcome.TRANSFERRED_OUT': 'Transferred out', 'outcome.DECEASED': 'Deceased',
    deadline: 'Deadline', arrived_at: 'Arrived', stale: 'stale', overflow: 'overflow', overdue: 'overdue',
    soon: 'due soon', declined: 'declined before', same_area: 'same area', near_area: 'neighbouring area', deteriorated: 'deteriorating', never: 'never declared',
    'ok.saved': 'Saved', 'ok.done': 'Done', 'error.field': 'Please check this field',
    'error.failed': 'This could not be done', 'error.network': 'No connection. What you typed is kept.',
    'status.REPORTED': 'Reported', 'status.HOME_CARE': 'Home care', 'status.AWAITING_PLACEMENT': 'Awaiting placement',
    'status.PLACEMENT_IN_PROGRESS': 'Placement in progress', 'status.HOSPITALIZED': 'Hospitalized', 'status.IN_HOTEL': 'In hotel',
    'status.RECOVERED': 'Recovered', 'status.DECEASED': 'Deceased', 'status.TRANSFERRED_OUT': 'Transferred out',
    'status.REQUESTED': 'Requested', 'status.OFFERED': 'Offered', 'status.ACCEPTED': 'Accepted',
    'status.TRANSPORT_ARRANGED': 'Transport arranged', 'status.IN_TRANSIT': 'In transit', 'status.ARRIVED': 'Arrived',
    'status.CANCELLED': 'Cancelled', 'origin.HOME': 'Home', 'origin.FACILITY': 'Transfer',
    risk_factors: 'Risk factors', 'hc.more_needs': 'Further needs',
    'risk.AGE_65_PLUS': 'Age 65+', 'risk.DIABETES': 'Diabetes', 'risk.CHRONIC_LUNG': 'Chronic lung disease', 'risk.CHRONIC_KIDNEY': 'Chronic kidney disease', 'risk.DIALYSIS': 'On dialysis', 'risk.PREGNANCY': 'Pregnancy', 'risk.IMMUNOSUPPRESSED': 'Immunosuppressed', 'risk.OBESITY': 'Obesity', 'risk.CARDIOVASCULAR': 'Cardiovascular disease',
    'cap.OXYGEN': 'Oxygen', 'cap.VENTILATOR': 'Ventilator', 'cap.ECMO': 'ECMO', 'cap.DIALYSIS': 'Dialysis', 'cap.PEDIATRIC': 'Paediatric', 'cap.PERINATAL': 'Perinatal', 'cap.PSYCHIATRIC': 'Psychiatric', 'cap.DEMENTIA_CARE': 'Dementia care',
    'ev.CaseReported': 'Case reported', 'ev.CaseTriaged': 'Triaged', 'ev.PriorityOverridden': 'Priority changed', 'ev.ObservationRecorded': 'Observation',
    'ev.DeteriorationFlagged': 'Deterioration reported', 'ev.HomeCareStarted': 'Home care started', 'ev.CareSiteAssigned': 'Care at home assigned', 'ev.CaseStatusChanged': 'Status changed', 'ev.CaseClosed': 'Closed',
    'ev.PlacementRequested': 'Placement requested', 'ev.PlacementOffered': 'Offered', 'ev.PlacementAccepted': 'Accepted', 'ev.PlacementDeclined': 'Declined',
    'ev.OfferExpired': 'Offer expired', 'ev.TransportArranged': 'Transport arranged', 'ev.PatientDeparted': 'Departed', 'ev.PatientArrived': 'Arrived',
    'ev.PlacementCancelled': 'Placement cancelled', 'ev.PatientDischarged': 'Discharged',
    'acc.ACCEPTING': 'Accepting', 'acc.LIMITED': 'Limited', 'acc.NOT_ACCEPTING': 'Not accepting',
    minutes: 'min', hours: 'h', prefecture: 'Prefecture', area: 'Area', 'nav.admin': 'Administration',
    'adm.users': 'Users', 'adm.display_name': 'Display name', 'adm.organisation': 'Organisation', 'adm.role': 'Role',
    'adm.new_user': 'Add a user', 'adm.first_password': 'First password (12 characters or more)', 'adm.add': 'Add',
    'adm.clients': 'API clients', 'adm.client_name': 'Name', 'adm.scopes': 'Scopes (comma-separated: facilities, cases, placements, views)',
    'adm.expires_days': 'Days valid', 'adm.issue': 'Issue', 'adm.token_once': 'This token is shown only now. Keep it safe: ',
    'adm.revoke': 'Revoke', 'adm.revoked': 'revoked', 'adm.audit': 'Audit log', 'adm.case_id': 'Case id',
    'adm.webhooks': 'Webhooks (where alerts are sent)', 'adm.webhook_url': 'Endpoint URL (https)',
    'adm.webhook_kinds': 'Alert kinds (comma-separated, empty for every kind)', 'adm.register': 'Register',
    'adm.secret_once': 'Signing secret (shown this once only): ', 'adm.failing': 'keeps failing',
    'adm.pending': 'pending', 'adm.delete': 'Delete', 'adm.deliveries': 'Deliveries',
    'adm.principal': 'Principal (e.g. user:demo-hc)', 'adm.kind': 'Kind (e.g. PII_READ)', 'adm.search': 'Search', 'adm.csv': 'Export CSV',
    'adm.at': 'At', 'adm.kind_short': 'Kind', 'adm.principal_short': 'Principal', 'adm.via': 'Via', 'adm.case_short': 'Case',
    'adm.disable': 'Disable', 'adm.enable': 'Enable', 'adm.disabled': 'disabled', 'adm.locked': 'locked', 'adm.active': 'active',
    'adm.reset': 'Reset password', 'adm.new_password': 'New password', 'adm.expires': 'expires',
  },
};

// Descriptions the API gives for fields, in Japanese; others are shown as they come.
const DESCRIPTIONS_JA = [
  [/^is required when HQ enters figures/, '本部の代行入力では必須です'],
  [/^is required when override_capacity/, '定員超過で受け入れる場合は必須です'],
  [/^is required/, '必須です'],
  [/^must not be empty/, '入力してください'],
  [/^must not be in the future/, '未来の日時は入力できません'],
  [/^must not be negative/, '0以上の数を入力してください'],
  [/^must be a 5 or 6 digit municipality code/, '5桁または6桁の市区町村コードを入力してください'],
  [/^must be a 4 digit medical area code/, '4桁の医療圏コードを入力してください'],
  [/^must be a date/, '日付を YYYY-MM-DD の形で入力してください'],
  [/^must be a percentage from 1 to 100/, '1〜100 の数を入力してください'],
  [/^must be between 300 and 450 tenths/, '30.0〜45.0 ℃ の範囲で入力してください'],
  [/^must be a phone number/, '電話番号は数字と + - ( ) 空白で入力してください'],
  [/^must be a UUID/, '正しいIDではありません'],
  [/^must be 2 to 64 of a-z/, '英小文字・数字・ハイフンで2〜64文字で入力してください'],
  [/^must be 3 to 64 of a-z/, '英小文字・数字・. _ - で3〜64文字で入力してください'],
  [/^must be (\d+) to (\d+) characters/, '$1〜$2 文字で入力してください'],
  [/^must be 1 to \d+ (printable ASCII )?characters/, '文字数を確認してください'],
  [/^must be at most \d+ characters/, '長すぎます'],
  [/^must be at most (\d+)/, '$1 以下の数を入力してください'],
  [/^must be from 1 \(most urgent\) to 5/, '1（最優先）〜5 を入力してください'],
  [/^must be empty while ACCEPTING/, '「受入可」のときは制約を付けられません。「制限あり」を選んでください'],
  [/^ready \((\d+)\) exceeds secured \((\d+)\)/, '即応病床（$1）が確保病床（$2）を超えています。先に病床を確保してください'],
  [/^is not a registered facility/, '登録されていない施設です'],
  [/^is not a registered organisation/, '登録されていない組織です'],
  [/^is listed twice/, '重複しています'],
  [/^a case with this reference has been reported already/, 'この HER-SYS ID の患者はすでに報告されています'],
  [/^must be one of/, '選択肢から選んでください'],
  [/^must name at least one scope/, '範囲を1つ以上指定してください'],
  [/^malformed JSON: invalid type: string/, '数値を入力してください'],
  [/^malformed JSON: missing field/, '入力してください'],
  [/not a number|must be a number|invalid digit/, '数値を入力してください'],
  [/cannot stand for a/, 'この組織の種類には指定できない役割です'],
];


let lang = localStorage.getItem('noroshi.lang') === 'en' ? 'en' : 'ja';
const rerenders = [];

/** A text in the user's language; a kind of facility may word it its own way
 *  (`key@HOTEL`: a hotel admits residents, 入所/退所, where a hospital says 入院/退院). */
function t(key) {
  const role = document.body ? document.body.dataset.role : '';
  const own = role && `${key}@${role}`;
  return (own && ((I18N[lang] && I18N[lang][own]) || I18N.ja[own]))
    || (I18N[lang] && I18N[lang][key]) || I18N.ja[key] || key;
}

function applyI18n(root) {
  document.documentElement.lang = lang;
  for (const node of (root || document).querySelectorAll('[data-i18n]')) {
    node.textContent = t(node.dataset.i18n);
  }
  for (const node of (root || document).querySelectorAll('[data-i18n-placeholder]')) {
    node.placeholder = t(node.dataset.i18nPlaceholder);
  }
  // The switch names the other language in that language.
  const button = document.getElementById('lang');
  if (button) {
    button.textContent = t('lang.switch');
    button.lang = lang === 'ja' ? 'en' : 'ja';
  }
  const live = document.getElementById('live');
  if (live) live.textContent = t('live.' + live.dataset.state);
}

function setLang(next) {
  lang = next;
  localStorage.setItem('noroshi.lang', lang);
  applyI18n();
  for (const render of rerenders) render();
}

/** An element with attributes and children (strings become text nodes). */
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function tag(kind, key) {
  return h('span', { class: 'tag ' + kind }, t(key || kind));
}

const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || '';

class ApiFailure extends Error {
  constructor(status, body) {
    super((body && body.message) || ('HTTP ' + status));
    this.status = status;
    this.body = body || {};
  }
}

async function api(path, options) {
  const opts = Object.assign({ credentials: 'same-origin', headers: {} }, options || {});
  if (opts.method && opts.method !== 'GET') {
    opts.headers['X-CSRF-Token'] = csrf();
    opts.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(path, opts);
  if (response.status === 401) {
    window.location.assign('/login');
    throw new ApiFailure(401, { message: 'session ended' });
  }
  const body = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiFailure(response.status, body);
  return body;
}

function commandId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function command(name, body) {
  return api('/api/v1/commands/' + name, {
    method: 'POST',
    body: JSON.stringify(Object.assign({ command_id: commandId() }, body)),
  });
}

/** `stream:version,…` of a command result, for read-your-writes. */
function minVersions(result) {
  return (result.streams || []).map((s) => `${s.stream_id}:${s.version}`).join(',');
}

/** The medical areas and municipalities by code (`GET /api/v1/areas`), and the facilities
 *  by id (`GET /api/v1/facilities`), once loaded. */
const areaNames = new Map();
const municipalityNames = new Map();
const facilityNames = new Map();

function localName(entry) {
  return lang === 'en' && entry.name_en ? entry.name_en : entry.name;
}

/** `3504 山口・防府`: an area's code with its name, or the code alone while no name is known. */
function areaLabel(code) {
  if (!code) return '—';
  const area = areaNames.get(code);
  return area ? `${code} ${localName(area)}` : code;
}

/** `防府市`: a municipality's name, or its code while no name is known. */
function municipalityLabel(code) {
  const municipality = municipalityNames.get(code);
  return municipality ? localName(municipality) : code;
}

/** `防府中央みらい病院`: a facility's name, or its id while no name is known. */
function facilityLabel(id) {
  const facility = facilityNames.get(id);
  return facility ? localName(facility) : id;
}

/** Loads the names and draws the page again with them; without them, codes and ids show. */
async function loadNames() {
  try {
    const { areas, municipalities } = await api('/api/v1/areas');
    for (const area of areas || []) areaNames.set(area.code, area);
    for (const municipality of municipalities || []) municipalityNames.set(municipality.code, municipality);
    // The public statistics name no facility.
    if (document.body.dataset.role !== 'PUBLIC') {
      const { facilities } = await api('/api/v1/facilities');
      for (const facility of facilities || []) facilityNames.set(facility.facility_id, facility);
    }
  } catch (_) {
    // Whatever loaded is used.
  }
  for (const render of rerenders) render();
}

/** The header names the user's organisation. */
function showOrganisation() {
  const node = document.getElementById('who-org');
  if (!node) return;
  const name = facilityLabel(document.body.dataset.organisation);
  node.textContent = name;
  // 「山口県入院調整本部 · 入院調整本部」 says it twice: the role goes when the name ends with it.
  const role = document.getElementById('who-role');
  if (role) role.hidden = name.endsWith(t('role.' + document.body.dataset.role));
}
rerenders.push(showOrganisation);

/** The health center's report form offers its own jurisdiction's municipalities by name
 *  (all the deployment's, should the page not know the jurisdiction), keeping the choice. */
function fillJurisdiction() {
  const select = document.querySelector('#report-form select[name="municipality"]');
  if (!select) return;
  const own = (document.body.dataset.jurisdiction || '').split(',').filter(Boolean);
  const codes = own.length ? own : [...municipalityNames.keys()];
  const chosen = select.value;
  const options = codes
    .map((code) => [code, municipalityLabel(code)])
    .sort((a, b) => a[1].localeCompare(b[1], lang) || a[0].localeCompare(b[0]));
  select.replaceChildren(
    h('option', { value: '', disabled: true, selected: !chosen }, t('choose')),
    ...options.map(([code, label]) => h('option', { value: code, selected: code === chosen }, label)));
}

/** Fills the `<datalist id>` a field suggests from (if the page has it): `[value, label]` pairs. */
function fillList(id, choices) {
  const list = document.getElementById(id);
  if (list) list.replaceChildren(...choices.map(([value, label]) => h('option', { value, label })));
}

// The municipality field suggests codes by name; HQ's facility field, hospitals and hotels;
// the admin forms' organisation field, every registered facility.
rerenders.push(() => {
  fillJurisdiction();
  const facilities = [...facilityNames.values()];
  fillList('facility-list', facilities.filter((f) => f.kind === 'HOSPITAL' || f.kind === 'HOTEL')
    .map((f) => [f.facility_id, `${localName(f)} (${areaLabel(f.medical_area)})`]));
  fillList('organisation-list', facilities.map((f) => [f.facility_id, localName(f)]));
});

/** An organisation by name, with its id below for those who administer it. */
function organisationCell(id) {
  return facilityNames.has(id) ? [facilityLabel(id), h('div', { class: 'muted' }, id)] : id;
}

function setLive(state) {
  const node = document.getElementById('live');
  if (!node) return;
  node.dataset.state = state;
  node.textContent = t('live.' + state);
}

/** The views answer canonical protobuf JSON, whose enum values carry their type's
 *  prefix (`BED_CATEGORY_MODERATE`). The pages name values without it, as the labels
 *  and the forms' choices do: this strips the prefix from the fields that hold enums. */
const ENUM_FIELDS = new Set(['category', 'kind', 'acceptance', 'constraints', 'status', 'severity',
  'sex', 'needs', 'risk_factors', 'vehicle', 'outcome', 'moving_on_status', 'mode', 'urgency', 'recommendation',
  'subject_kind']);
const ENUM_PREFIX = /^(FACILITY_KIND|CAPABILITY|BED_CATEGORY|ACCEPTANCE_CONSTRAINT|ACCEPTANCE|RISK_FACTOR|SEVERITY|SEX|CASE_STATUS|CASE_OUTCOME|PLACEMENT_STATUS|VEHICLE|DISCHARGE_OUTCOME|CONSULT_MODE|CONSULT_URGENCY|CONSULT_STATUS|RECOMMENDATION|ALERT_KIND|ALERT_SEVERITY|ALERT_STATUS|ALERT_SUBJECT_KIND)_/;
function plainEnums(value, key) {
  if (Array.isArray(value)) return value.map((v) => plainEnums(v, key));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainEnums(v, k)]));
  }
  return typeof value === 'string' && ENUM_FIELDS.has(key) ? value.replace(ENUM_PREFIX, '') : value;
}

/** The page's live streams. Leaving the page closes them at once: the browser holds few
 *  connections per server, and streams left to linger would hold up the next page's
 *  requests. A page brought back from the back-forward cache reloads, live again. */
const LIVE_SOURCES = new Set();
window.addEventListener('pagehide', () => {
  for (const source of LIVE_SOURCES) source.close();
  LIVE_SOURCES.clear();
});
window.addEventListener('pageshow', (e) => { if (e.persisted) location.reload(); });

/** A live view: `onSnapshot` with the view, then `onDelta` with each change. */
function live(view, params, onSnapshot, onDelta) {
  // A list is a repeated parameter (`status=A&status=B`).
  const query = new URLSearchParams(Object.entries(params || {})
    .flatMap(([key, value]) => (Array.isArray(value) ? value : [value]).map((v) => [key, v]))).toString();
  const source = new EventSource(`/api/v1/views/${view}/stream${query ? '?' + query : ''}`);
  LIVE_SOURCES.add(source);
  source.addEventListener('open', () => setLive('live'));
  source.addEventListener('error', () => setLive('reconnecting'));
  const data = (e) => plainEnums(JSON.parse(e.data));
  source.addEventListener('snapshot', (e) => { setLive('live'); onSnapshot(data(e)); });
  source.addEventListener('delta', (e) => (onDelta || onSnapshot)(data(e)));
  source.addEventListener('update', (e) => onSnapshot(data(e)));
  return source;
}

/** Rows keyed by `key`: a snapshot replaces them, a delta updates and removes. */
class Rows {
  constructor(key) { this.key = key; this.map = new Map(); }
  replace(rows) { this.map = new Map(rows.map((r) => [this.key(r), r])); }
  apply(rows, removed, removedKey) {
    for (const r of rows || []) this.map.set(this.key(r), r);
    for (const k of removed || []) this.map.delete(removedKey ? removedKey(k) : k);
  }
  values() { return [...this.map.values()]; }
}

/** The statuses of a case still in the health center's hands (DESIGN.md §5.2). */
const OPEN_CASE_STATUSES = ['REPORTED', 'HOME_CARE', 'AWAITING_PLACEMENT', 'PLACEMENT_IN_PROGRESS', 'HOSPITALIZED', 'IN_HOTEL'];

/** Cases in the order a nurse works them: a deteriorating patient first, then by status
 *  from what awaits the health center (triage, a placement) to what does not, then by
 *  priority and the time of the report. */
const CASE_ATTENTION = ['REPORTED', 'AWAITING_PLACEMENT', 'PLACEMENT_IN_PROGRESS', 'HOME_CARE', 'IN_HOTEL', 'HOSPITALIZED', 'RECOVERED', 'TRANSFERRED_OUT', 'DECEASED'];
function byAttention(a, b) {
  return Number(!!b.deteriorated) - Number(!!a.deteriorated)
    || CASE_ATTENTION.indexOf(a.status) - CASE_ATTENTION.indexOf(b.status)
    || a.priority - b.priority || a.reported_at.localeCompare(b.reported_at);
}

/** Text as a search compares it: full- and half-width alike, case-free, katakana as hiragana. */
function searchKey(text) {
  return text.normalize('NFKC').toLowerCase().replace(/\s+/g, '')
    .replace(/[\u30a1-\u30f6]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0x60));
}

/** Times show in Japan time, wherever the device is (DESIGN.md §5). */
const JAPAN = 'Asia/Tokyo';

function fmtTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return d.toLocaleString(lang === 'ja' ? 'ja-JP' : 'en-GB', { timeZone: JAPAN, month: 'numeric', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** Full years from a `YYYY-MM-DD` birth date to today in Japan, or `null` for no date. */
function ageInJapan(birth) {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(birth || '');
  if (!match) return null;
  const [year, month, day] = new Date().toLocaleDateString('en-CA', { timeZone: JAPAN }).split('-').map(Number);
  const [by, bm, bd] = match.slice(1).map(Number);
  return year - by - (month < bm || (month === bm && day < bd) ? 1 : 0);
}

/** A `datetime-local` value, entered in Japan time (UTC+9 all year), as an RFC 3339 UTC time. */
function fromJst(value) {
  const withSeconds = /T\d\d:\d\d$/.test(value) ? value + ':00' : value;
  return new Date(withSeconds + '+09:00').toISOString();
}

function fmtWait(seconds) {
  const m = Math.max(0, Math.floor(seconds / 60));
  return m < 60 ? `${m}${t('minutes')}` : `${Math.floor(m / 60)}${t('hours')}${m % 60}${t('minutes')}`;
}

function fmtCountdown(iso) {
  const left = Math.floor((new Date(iso) - Date.now()) / 1000);
  if (left <= 0) return '0:00';
  return `${Math.floor(left / 60)}:${String(left % 60).padStart(2, '0')}`;
}

/** An event's name in the reader's language; an event without one keeps its type name. */
function eventLabel(type) {
  const key = 'ev.' + type;
  const label = t(key);
  return label === key ? type : label;
}

/** The choices of a checkbox group (`<fieldset data-choices>`): its values, sent with a
 *  prefix, each labelled by `<group>.<value>`. */
const CHOICES = {
  risk: {
    prefix: 'RISK_FACTOR_',
    values: ['AGE_65_PLUS', 'DIABETES', 'CHRONIC_LUNG', 'CHRONIC_KIDNEY', 'DIALYSIS', 'PREGNANCY', 'IMMUNOSUPPRESSED', 'OBESITY', 'CARDIOVASCULAR'],
  },
  constraint: {
    prefix: 'ACCEPTANCE_CONSTRAINT_',
    values: ['STAFF', 'ROOMS', 'EQUIPMENT', 'INFECTION_CONTROL'],
  },
  cap: {
    prefix: 'CAPABILITY_',
    values: ['OXYGEN', 'VENTILATOR', 'ECMO', 'DIALYSIS', 'PEDIATRIC', 'PERINATAL', 'PSYCHIATRIC', 'DEMENTIA_CARE'],
  },
};

/** Fills every checkbox group of the page with its choices. */
function buildChoices() {
  for (const group of document.querySelectorAll('fieldset[data-choices]')) {
    const kind = group.dataset.choices;
    const { prefix, values } = CHOICES[kind];
    group.append(...values.map((value) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name: group.dataset.list, value: prefix + value }),
      h('span', { 'data-i18n': `${kind}.${value}` }, t(`${kind}.${value}`)))));
  }
}

/** Ticks the boxes of a checkbox group whose values (without the group's prefix, as views
 *  give them) are in `values`, and unticks the rest. */
function checkChoices(group, values) {
  const { prefix } = CHOICES[group.dataset.choices];
  for (const input of group.querySelectorAll('input')) input.checked = (values || []).includes(input.value.slice(prefix.length));
}

/** The figures a capacity declaration states for each category. */
const FIGURES = ['secured', 'ready', 'occupied'];

/** Bed categories from the most to the least acute, the order every page lists them in. */
const CATEGORY_ORDER = ['SEVERE', 'MODERATE', 'MILD', 'HOTEL_ROOM'];

function byCategory(a, b) {
  return CATEGORY_ORDER.indexOf(a.category) - CATEGORY_ORDER.indexOf(b.category);
}

/** Needed capabilities (`OXYGEN` or `CAPABILITY_OXYGEN`) in the reader's language. */
function needsLabel(needs) {
  return (needs || []).map((need) => t('cap.' + String(need).replace(/^CAPABILITY_/, ''))).join(', ');
}

/** A category's acceptance, with the reasons of a limit: 制限あり（人員, 設備）. */
function acceptanceLabel(row) {
  const reasons = (row.constraints || []).map((c) => t('constraint.' + c)).join(', ');
  return t('acc.' + row.acceptance) + (reasons ? (lang === 'ja' ? `（${reasons}）` : ` (${reasons})`) : '');
}

function enumLabel(prefix, value) {
  const key = prefix + '.' + String(value || '').replace(/^(BED_CATEGORY_|SEVERITY_|SEX_|VEHICLE_)/, '');
  return t(key);
}

// ── Forms: values by field path, errors by field, and nothing the user typed is lost ──

function setPath(target, path, value) {
  const parts = path.replace(/\[(\d+)\]/g, '.$1').split('.');
  let node = target;
  parts.forEach((part, i) => {
    const last = i === parts.length - 1;
    const nextIsIndex = !last && /^\d+$/.test(parts[i + 1]);
    if (last) node[part] = value;
    else node = node[part] || (node[part] = nextIsIndex ? [] : {});
  });
}

function formValues(form) {
  const out = {};
  // A group of checkboxes is a list of the values checked, empty when none is.
  for (const group of form.querySelectorAll('[data-list]')) {
    setPath(out, group.dataset.list, [...group.querySelectorAll('input:checked')].map((input) => input.value));
  }
  for (const input of form.querySelectorAll('[name]')) {
    if (input.name === 'csrf_token' || input.disabled || input.closest('[data-list]')) continue;
    let value;
    if (input.type === 'checkbox') value = input.checked;
    else {
      value = input.value.trim();
      if (value === '') continue;
      if (input.type === 'datetime-local') value = fromJst(value);
      else if (input.dataset.scale) {
        const n = Number(value.replace(',', '.'));
        value = Number.isFinite(n) ? Math.round(n * Number(input.dataset.scale)) : value;
      } else if (input.inputMode === 'numeric' && input.name !== 'municipality' && input.name !== 'patient.phone') {
        value = /^-?\d+$/.test(value) ? Number(value) : value;
      }
    }
    setPath(out, input.name, value);
  }
  return out;
}

function describe(description) {
  if (lang !== 'ja') return description;
  for (const [pattern, text] of DESCRIPTIONS_JA) {
    const match = description.match(pattern);
    if (match) return text.replace(/\$(\d)/g, (_, n) => match[Number(n)] || '');
  }
  return `${t('error.field')}（${description}）`;
}

function clearErrors(form) {
  for (const node of form.querySelectorAll('.field-error')) node.remove();
  for (const node of form.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
  const status = form.querySelector('.form-status');
  if (status) { status.textContent = ''; status.className = 'form-status'; }
}

function showFailure(form, failure) {
  const status = form.querySelector('.form-status');
  const violations = (failure.body && failure.body.violations) || [];
  // A second report of the same reference is refused as ALREADY_EXISTS: said at its field.
  if (failure.status === 409 && /external_ref/.test(failure.message) && form.querySelector('[name="external_ref"]')) {
    violations.push({ field: 'external_ref', description: 'a case with this reference has been reported already' });
  }
  let unplaced = [];
  for (const v of violations) {
    const input = [...form.querySelectorAll('[name]')].find((i) => i.name === v.field)
      || [...form.querySelectorAll('[name]')].find((i) => v.field.startsWith(i.name + '.') || v.field.startsWith(i.name + '['));
    if (input) {
      input.setAttribute('aria-invalid', 'true');
      // A checkbox group takes its error as a whole.
      (input.closest('[data-list]') || input.closest('label, td')).append(h('span', { class: 'field-error', 'data-field': v.field }, describe(v.description)));
    } else unplaced.push(v);
  }
  if (status) {
    status.className = 'form-status bad';
    const text = failure instanceof ApiFailure
      ? (violations.length ? t('error.field') : `${t('error.failed')}: ${failure.message}`)
      : t('error.network');
    status.textContent = [text, ...unplaced.map((v) => `${v.field}: ${describe(v.description)}`)].join(' ');
  }
}

/** Submits `form` as command `name`; `extra` adds fields. Values stay on failure. */
function bindForm(form, name, extra, onDone) {
  if (!form) return;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector('button[type="submit"]');
    if (button) button.disabled = true;
    try {
      const result = await command(name, Object.assign(formValues(form), typeof extra === 'function' ? extra() : extra));
      const status = form.querySelector('.form-status');
      if (status) { status.className = 'form-status ok'; status.textContent = t('ok.saved'); }
      if (onDone) onDone(result, form);
    } catch (failure) {
      showFailure(form, failure);
    } finally {
      if (button) button.disabled = false;
    }
  });
}

async function act(button, name, body) {
  button.disabled = true;
  try {
    return await command(name, body);
  } catch (failure) {
    const note = h('span', { class: 'field-error', role: 'alert' }, `${t('error.failed')}: ${failure.message}`);
    button.after(note);
    setTimeout(() => note.remove(), 8000);
    return null;
  } finally {
    button.disabled = false;
  }
}

// ── Alerts and notifications, on every role's page ──

/** Whether this browser tells its user of new offers, consults and critical alerts:
 *  `on`, `muted`, or `off` (never asked). Kept per browser. */
let notifyState = localStorage.getItem('noroshi.notify') || 'off';

function showNotifyState() {
  const button = document.getElementById('notify');
  if (!button) return;
  const denied = typeof Notification !== 'undefined' && Notification.permission === 'denied';
  button.textContent = denied ? t('notify.denied') : t('notify.' + notifyState);
  button.setAttribute('aria-pressed', String(notifyState === 'on'));
  button.disabled = denied;
}

async function toggleNotify() {
  if (notifyState === 'on') {
    notifyState = 'muted';
  } else {
    const permission = typeof Notification === 'undefined' ? 'denied'
      : Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
    notifyState = permission === 'granted' ? 'on' : 'off';
  }
  localStorage.setItem('noroshi.notify', notifyState);
  showNotifyState();
}

/** A short two-tone sound, made by the browser itself. */
function chime() {
  try {
    const audio = new AudioContext();
    [880, 660].forEach((frequency, i) => {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = frequency;
      gain.gain.value = 0.08;
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + i * 0.18);
      tone.stop(audio.currentTime + i * 0.18 + 0.15);
    });
  } catch (_) {
    // No sound where the browser allows none.
  }
}

/** A desktop notification and a sound, unless muted or not allowed. */
function notify(title, body, tag) {
  if (notifyState !== 'on' || typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  new Notification(title, { body, tag, lang });
  chime();
}

/** Calls `onNew` for each key of `rows` not seen before, once the first list is known. */
function newcomers() {
  let seen = null;
  return (keys, onNew) => {
    const fresh = seen ? keys.filter((k) => !seen.has(k)) : [];
    seen = new Set([...(seen || []), ...keys]);
    fresh.forEach(onNew);
  };
}

/** What an alert names, in the reader's words. */
function alertSubject(a) {
  switch (a.subject_kind) {
    case 'FACILITY': return facilityLabel(a.subject_id);
    case 'AREA': {
      const [area, category] = a.subject_id.split('/');
      return `${areaLabel(area)} ${category ? enumLabel('cat', category) : ''}`;
    }
    case 'CASE': return h('a', { href: `/timeline?case_id=${a.subject_id}` }, t('timeline'));
    case 'PLACEMENT': return h('a', { href: `/timeline?placement_id=${a.subject_id}` }, t('timeline'));
    default: return '';
  }
}

/** The alert panel: the reader's own alerts, live, open ones first, each acknowledged
 *  with a note; the page title counts the open ones. */
function mountAlerts() {
  const role = document.body.dataset.role;
  if (['PUBLIC', 'ADMIN'].includes(role) || document.body.dataset.page === 'admin'
    || !document.querySelector('main .grid')) return;
  const panel = h('section', { class: 'panel', id: 'alerts-panel' },
    h('h2', { 'data-i18n': 'hq.alerts' }, t('hq.alerts')),
    h('ul', { id: 'alerts', class: 'alerts' }));
  // HQ looks at its alerts first; the others work their lists first.
  if (document.body.dataset.page === 'hq') document.querySelector('main .grid').prepend(panel);
  else document.querySelector('main .grid').append(panel);
  const header = document.getElementById('lang');
  if (header && !document.getElementById('notify')) {
    header.before(h('button', { type: 'button', id: 'notify', class: 'lang', onclick: toggleNotify }));
    showNotifyState();
  }
  const title = document.title;
  const alerts = new Rows((a) => a.alert_id);
  const arrivals = newcomers();
  const SEVERITY = ['CRITICAL', 'WARNING', 'INFO'];
  function render() {
    const rows = alerts.values().sort((a, b) => Number(b.status === 'OPEN') - Number(a.status === 'OPEN')
      || SEVERITY.indexOf(a.severity) - SEVERITY.indexOf(b.severity) || b.raised_at.localeCompare(a.raised_at));
    const open = rows.filter((a) => a.status === 'OPEN').length;
    document.title = open ? `(${open}) ${title}` : title;
    document.getElementById('alerts').replaceChildren(...(rows.length ? rows.slice(0, 30).map((a) => h('li', {
      'data-alert': a.alert_id, 'data-kind': a.kind,
      class: [a.severity === 'CRITICAL' ? 'bad' : '', a.status !== 'OPEN' ? 'done' : ''].join(' ').trim() || null,
    },
    h('strong', {}, `${t('asev.' + a.severity)} · ${t('akind.' + a.kind)}`), ' ', alertSubject(a),
    // The server states the facts in English; marked so, for screen readers.
    h('div', { class: 'muted' }, `${fmtTime(a.raised_at)} · `, h('span', { lang: 'en' }, a.message)),
    a.escalated_at ? h('div', { class: 'muted' }, t('al.escalated')) : null,
    a.status === 'ACKNOWLEDGED' ? h('div', { class: 'acked' }, `${t('al.acked')} (${t('al.by')} ${a.acknowledged_by}${a.acknowledgement_note ? ': ' + a.acknowledgement_note : ''})`) : null,
    a.status === 'RESOLVED' ? h('div', { class: 'muted' }, t('al.resolved')) : null,
    a.status === 'OPEN' ? h('form', { class: 'inline-form ack-form', onsubmit: (e) => {
      e.preventDefault();
      act(e.target.querySelector('button'), 'AcknowledgeAlert', { alert_id: a.alert_id, note: e.target.querySelector('input').value.trim() });
    } }, h('input', { name: 'note', 'aria-label': t('al.ack_note'), placeholder: t('al.ack_note') }),
    h('button', { type: 'submit', class: 'secondary ack' }, t('al.ack'))) : null))
      : [h('li', { class: 'muted' }, t('al.none'))]));
  }
  const arrived = () => arrivals(alerts.values().filter((a) => a.status === 'OPEN' && a.severity === 'CRITICAL').map((a) => a.alert_id),
    (id) => { const a = alerts.map.get(id); notify(t('notify.critical'), `${t('akind.' + a.kind)} · ${a.message}`, id); });
  live('alerts', {}, (view) => { alerts.replace(view.rows); arrived(); render(); },
    (delta) => { alerts.apply(delta.rows, delta.removed); arrived(); render(); });
  rerenders.push(render);
  rerenders.push(showNotifyState);
}

// ── Pages ──

const PAGES = {};

/** A view read again (unary) whenever `poke()` is called, at most once a second, and
 * every minute: for panels that change with a live stream the page already follows, so
 * that a page does not open more streams than the browser allows connections per host. */
function refreshing(view, params, render) {
  const query = new URLSearchParams(params || {}).toString();
  let timer = null;
  const load = async () => {
    timer = null;
    try {
      render(plainEnums(await api(`/api/v1/views/${view}${query ? '?' + query : ''}`)));
    } catch (failure) {
      // The next poke or the minute's refresh tries again.
    }
  };
  load();
  setInterval(load, 60e3);
  return () => { if (!timer) timer = setTimeout(load, 1000); };
}

/** Yamaguchi's eight secondary medical areas on a schematic grid (column, row), roughly
 * where they lie: Shimonoseki in the west, Iwakuni in the east, Hagi and Nagato on the
 * Sea of Japan, Yanai on the Seto Inland Sea. */
const AREA_TILES = {
  3507: [1, 0], 3508: [2, 0],
  3506: [0, 1], 3505: [1, 1], 3504: [2, 1], 3503: [3, 1], 3501: [4, 1],
  3502: [3.5, 2],
};

/** An area's occupancy band: under 50 %, up to 70 %, 70 % or more, or no secured beds. */
function occupancyLevel(rate) {
  if (rate === null || rate === undefined || Number.isNaN(rate)) return 'none';
  return rate >= 0.7 ? 'high' : rate >= 0.5 ? 'mid' : 'low';
}

/** The area map: `figures` maps an area's code to `{ available, secured, occupied, rate }`
 * (any may be null, as public statistics withhold small counts); each tile links to
 * `#area-<code>` and says its figures on hover. */
function renderAreaMap(root, figures) {
  const [w, hgt, gap] = [124, 66, 8];
  const tiles = Object.entries(AREA_TILES).map(([code, [col, row]]) => {
    const f = figures.get(code) || {};
    const level = occupancyLevel(f.rate);
    const rate = f.rate === null || f.rate === undefined ? '—' : `${Math.round(f.rate * 100)}%`;
    const free = f.available === null || f.available === undefined ? '—' : f.available;
    const area = areaNames.get(code);
    const name = area ? localName(area) : code;
    const x = col * (w + gap); const y = row * (hgt + gap);
    const detail = `${code} ${name}: ${t('map.free')} ${free} · ${t('map.secured')} ${f.secured ?? '—'} · ${t('map.occupied')} ${f.occupied ?? '—'} · ${t('map.rate')} ${rate}`;
    return svg('a', { href: `#area-${code}` },
      svg('g', { 'data-area': code, 'data-level': level, class: `tile ${level}` },
        svg('title', {}, detail),
        svg('rect', { x, y, width: w, height: hgt, rx: 8 }),
        svg('text', { x: x + 8, y: y + 20, class: 'name' }, name),
        svg('text', { x: x + 8, y: y + 40, class: 'figure' }, `${t('map.free')} ${free}`),
        svg('text', { x: x + 8, y: y + 57, class: 'figure' }, `${t('map.rate')} ${rate}`)));
  });
  const legend = h('ul', { class: 'map-legend' }, ['low', 'mid', 'high', 'none'].map((level) =>
    h('li', { class: `swatch ${level}` }, t(`map.${level}`))));
  root.replaceChildren(svg('svg', { viewBox: `0 0 ${5 * (w + gap)} ${3 * (hgt + gap)}`, class: 'area-map', role: 'group', 'aria-label': t('map.title') }, tiles), legend);
}

/** An SVG element (`h` makes HTML ones). */
function svg(tag, attrs, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const minutes = (seconds) => (seconds === undefined || seconds === null ? null : Math.round(seconds / 60));
const stepText = (step) => {
  if (!step || !step.count) return '—';
  return `${minutes(step.p50_seconds)} / ${minutes(step.p90_seconds)}${t('minutes')} (${step.count})`;
};

/** `placement_sla` on HQ's page: bars for the prefecture's steps, a row per day, area and
 * severity, and the declines. */
function renderSla(view) {
  const steps = [['sla.to_offer', 'to_first_offer'], ['sla.to_accept', 'to_acceptance'], ['sla.to_arrive', 'to_arrival']];
  const pref = view.prefecture || {};
  const longest = Math.max(1, ...steps.map(([, key]) => minutes((pref[key] || {}).p90_seconds) || 0));
  const width = 360; const left = 110; const bar = 12;
  const chart = svg('svg', { viewBox: `0 0 ${left + width + 90} ${steps.length * 40 + 24}`, role: 'img', 'aria-label': t('sla.chart'), class: 'sla-chart' },
    svg('title', {}, t('sla.chart')),
    steps.map(([label, key], i) => {
      const step = pref[key] || {};
      const y = 10 + i * 40;
      const p50 = minutes(step.p50_seconds); const p90 = minutes(step.p90_seconds);
      return svg('g', { 'data-step': key },
        svg('text', { x: 0, y: y + 14, class: 'label' }, t(label)),
        p90 === null ? svg('text', { x: left, y: y + 14, class: 'label' }, '—') : [
          svg('rect', { x: left, y, width: Math.max(1, width * p90 / longest), height: bar, class: 'p90' }),
          svg('rect', { x: left, y: y + bar + 2, width: Math.max(1, width * p50 / longest), height: bar, class: 'p50' }),
          svg('text', { x: left + width + 6, y: y + 11, class: 'value' }, `${t('sla.p90')} ${p90}${t('minutes')}`),
          svg('text', { x: left + width + 6, y: y + bar + 13, class: 'value' }, `${t('sla.p50')} ${p50}${t('minutes')}`)]);
    }));
  document.getElementById('sla-chart').replaceChildren(chart);
  const body = document.querySelector('#sla-rows tbody');
  body.replaceChildren(...(view.rows || []).slice().reverse().map((r) => h('tr', {},
    h('td', {}, r.day), h('td', {}, r.medical_area ? areaLabel(r.medical_area) : '—'),
    h('td', {}, r.severity ? enumLabel('sev', r.severity) : '—'),
    h('td', { class: 'num' }, r.requested || 0),
    h('td', {}, stepText(r.to_first_offer)), h('td', {}, stepText(r.to_acceptance)), h('td', {}, stepText(r.to_arrival)),
    h('td', { class: 'num' }, r.cancelled || 0))));
  const list = (id, items, label) => document.getElementById(id).replaceChildren(...(items && items.length
    ? items.map((d) => h('li', {}, `${label(d.key)}: ${d.count}`)) : [h('li', { class: 'muted' }, t('sla.none'))]));
  list('sla-reasons', view.declines_by_reason, (key) => (key === 'OFFER_EXPIRED' ? t('sla.expired') : key));
  list('sla-facilities', view.declines_by_facility, facilityLabel);
}

PAGES.hq = () => {
  const beds = new Rows((r) => `${r.facility_id}|${r.category}`);
  let areas = [];
  let prefecture = null;
  const queue = new Rows((r) => r.placement_id);
  let choosing = null;
  let bedSource = null;
  let queueSource = null;
  let pokeSla = () => {};
  let pokeReconcile = () => {};
  // The moment shown while HQ reviews the past (a Date), or null for the present.
  let reviewAt = null;
  const nowMs = () => (reviewAt ? reviewAt.getTime() : Date.now());

  function totalsText(x) {
    const rate = x.occupancy_rate === null || x.occupancy_rate === undefined ? '—' : `${Math.round(x.occupancy_rate * 100)}%`;
    return `${t('available')} ${x.available} · ${t('ready')} ${x.ready} · ${t('occupied')} ${x.occupied} · ${t('held')} ${x.held} · ${t('occupancy')} ${rate}`;
  }

  function renderBeds() {
    const root = document.getElementById('bed-board');
    const pref = document.getElementById('bb-prefecture');
    pref.replaceChildren();
    if (prefecture) pref.append(h('tr', {}, h('th', {}, t('prefecture')), h('td', {}, totalsText(prefecture))));
    const byArea = new Map();
    for (const r of beds.values()) {
      const area = r.medical_area || '—';
      if (!byArea.has(area)) byArea.set(area, []);
      byArea.get(area).push(r);
    }
    const blocks = [...byArea.keys()].sort().map((area) => {
      const totals = areas.find((a) => (a.medical_area || '—') === area);
      const rows = byArea.get(area).sort((a, b) => a.facility_id.localeCompare(b.facility_id) || byCategory(a, b));
      return h('div', { class: 'area', 'data-area': area, id: `area-${area}` },
        h('h3', {}, `${t('area')} ${areaLabel(area)}`, totals ? h('span', { class: 'totals' }, totalsText(totals)) : null),
        h('table', { class: 'rows' },
          h('thead', {}, h('tr', {},
            h('th', {}, t('facility')), h('th', {}, t('category')), h('th', { class: 'num' }, t('secured')),
            h('th', { class: 'num' }, t('ready')), h('th', { class: 'num' }, t('occupied')), h('th', { class: 'num' }, t('held')),
            h('th', { class: 'num' }, t('available')), h('th', {}, t('declared_at')), h('th', {}, t('status')))),
          h('tbody', {}, rows.map((r) => h('tr', { 'data-facility': r.facility_id, 'data-category': r.category },
            h('td', {}, localName(r)),
            h('td', {}, enumLabel('cat', r.category)),
            h('td', { class: 'num' }, r.secured), h('td', { class: 'num' }, r.ready),
            h('td', { class: 'num' }, r.occupied), h('td', { class: 'num' }, r.held),
            h('td', { class: 'num available' }, r.available),
            h('td', { class: 'declared' }, r.declared_at ? fmtTime(r.declared_at) : '—'),
            h('td', {}, acceptanceLabel(r), r.declared_at ? (r.stale ? tag('stale') : null) : tag('never'),
              r.overflow ? tag('overflow') : null))))));
    });
    root.replaceChildren(...blocks);
    // The map follows the same figures: live, or as of the moment reviewed.
    renderAreaMap(document.getElementById('area-map'), new Map(areas.filter((a) => a.medical_area).map((a) => [a.medical_area, {
      available: a.available, secured: a.secured, occupied: a.occupied,
      rate: a.occupancy_rate ?? null,
    }])));
  }

  function renderQueue() {
    const body = document.querySelector('#queue tbody');
    const rows = queue.values().sort((a, b) => a.priority - b.priority || a.requested_at.localeCompare(b.requested_at));
    body.replaceChildren(...rows.map((r) => {
      const waiting = (nowMs() - new Date(r.requested_at)) / 1000;
      const canOffer = r.status === 'REQUESTED' && !reviewAt;
      return h('tr', { 'data-placement': r.placement_id, class: choosing === r.placement_id ? 'selected' : '' },
        h('td', { class: 'num priority' }, r.priority, r.priority_overridden ? tag('overridden') : null,
          r.deteriorated ? tag('deteriorated') : null,
          // Why HQ moved the patient, for whoever works the queue next (in full on hover).
          r.priority_reason ? h('div', { class: 'muted reason', title: r.priority_reason }, r.priority_reason) : null),
        h('td', {}, enumLabel('cat', r.category)),
        h('td', {}, needsLabel(r.needs)),
        h('td', {}, t('origin.' + r.origin_kind), ' ', r.origin_kind === 'FACILITY' ? facilityLabel(r.origin) : municipalityLabel(r.origin)),
        h('td', {}, fmtWait(waiting)),
        h('td', {}, t('status.' + r.status), r.target ? ` → ${facilityLabel(r.target)}` : '',
          r.hold_overdue ? tag('overdue') : null,
          r.offer_deadline && r.status === 'OFFERED' ? h('span', { class: 'countdown', 'data-deadline': r.offer_deadline }, ' ', fmtCountdown(r.offer_deadline)) : null),
        h('td', {}, canOffer ? h('button', { class: 'secondary choose', type: 'button', onclick: () => choose(r) }, t('hq.choose')) : null,
          reviewAt ? null : [' ', h('button', { class: 'secondary reprioritise', type: 'button', onclick: () => askPriority(r) }, t('hq.priority_button')),
            ' ', h('button', { class: 'secondary cancel', type: 'button', onclick: () => askCancel(r) }, t('hq.cancel_button'))],
          ' ', h('a', { href: `/timeline?placement_id=${r.placement_id}` }, t('timeline'))));
    }));
  }

  async function choose(row) {
    choosing = row.placement_id;
    renderQueue();
    const panel = document.getElementById('offer-panel');
    panel.hidden = false;
    document.getElementById('offer-for').textContent =
      `${t('hq.offer_for')}: ${enumLabel('cat', row.category)} · ${t('priority')} ${row.priority}${row.needs && row.needs.length ? ' · ' + needsLabel(row.needs) : ''}`;
    const list = document.getElementById('candidates');
    const error = document.getElementById('offer-error');
    error.textContent = '';
    list.replaceChildren();
    try {
      const { candidates } = await api(`/api/v1/placements/${row.placement_id}/candidates`);
      list.replaceChildren(...(candidates.length ? candidates.map((c) => h('li', { 'data-facility': c.facility_id },
        h('span', { class: 'cand-name' }, localName(c), ' ',
          h('span', { class: 'muted' }, `${t('area')} ${areaLabel(c.medical_area)} · ${t('available')} ${c.available}`),
          c.same_area ? tag('same', 'same_area') : (c.near_area ? tag('near', 'near_area') : null),
          c.declined_before ? tag('declined') : null),
        h('button', { type: 'button', class: 'offer', onclick: async (e) => {
          const done = await act(e.target, 'OfferPlacement', { placement_id: row.placement_id, facility_id: c.facility_id });
          if (done) { panel.hidden = true; choosing = null; renderQueue(); }
        } }, t('hq.offer_to')))) : [h('li', { class: 'muted' }, t('hq.no_candidates'))]));
    } catch (failure) {
      error.textContent = `${t('error.failed')}: ${failure.message}`;
    }
  }

  // A panel that acts on one queue row: `<name>-panel`, summed up in `<name>-for`, its
  // form emptied each time it opens and the panel closed once the command is done.
  const rowSummary = (row) =>
    `${enumLabel('cat', row.category)} · ${t('priority')} ${row.priority}${row.priority_overridden ? ` (${t('overridden')})` : ''} · ${t('status.' + row.status)}`;
  function rowPanel(name, command, body) {
    const panel = document.getElementById(`${name}-panel`);
    const form = panel.querySelector('form');
    let row = null;
    bindForm(form, command, () => body(row, form), () => {
      form.reset();
      panel.hidden = true;
      row = null;
    });
    return (chosen) => {
      row = chosen;
      panel.hidden = false;
      document.getElementById(`${name}-for`).textContent = rowSummary(chosen);
      form.reset();
      clearErrors(form);
      panel.scrollIntoView({ block: 'nearest' });
      return form;
    };
  }
  // HQ cancels a live placement, with its reason.
  const askCancel = rowPanel('cancel', 'CancelPlacement', (row) => ({ placement_id: (row || {}).placement_id }));
  // HQ overrides a waiting case's priority, with its reason; the queue moves the row as
  // the view follows the case.
  const openPriority = rowPanel('priority', 'OverridePriority', (row, form) => ({
    case_id: (row || {}).case_id,
    priority: Number(form.elements.priority.value),
  }));
  const askPriority = (row) => { openPriority(row).elements.priority.value = String(row.priority); };

  function connectBeds() {
    if (bedSource) bedSource.close();
    bedSource = null;
    if (reviewAt) { showMoment(reviewAt); return; }
    const category = document.getElementById('bb-category').value;
    bedSource = live('bed_board', category ? { category } : {}, (view) => {
      beds.replace(view.rows); areas = view.areas; prefecture = view.prefecture; renderBeds();
    }, (delta) => {
      beds.apply(delta.rows, delta.removed, (k) => `${k.facility_id}|${k.category}`);
      areas = delta.areas; prefecture = delta.prefecture; renderBeds();
      pokeReconcile();
    });
  }
  document.getElementById('bb-category').addEventListener('change', connectBeds);
  connectBeds();
  function connectQueue() {
    queueSource = live('placement_queue', {}, (view) => { queue.replace(view.rows); renderQueue(); },
      (delta) => { queue.apply(delta.rows, delta.removed); renderQueue(); pokeSla(); pokeReconcile(); });
  }
  connectQueue();

  // Review: the queue and the beds as they were at a moment of a chosen period, read
  // with `as_of`; the live streams pause meanwhile and resume on the way back.
  const review = document.getElementById('review-form');
  const slider = document.getElementById('review-slider');
  const STEPS = Number(slider.max);
  let period = null;
  let shown = 0;
  let playing = null;
  // `datetime-local` values are read as times in Japan, wherever the browser is.
  const jstInput = (date) => new Date(date.getTime() + 9 * 3600e3).toISOString().slice(0, 19);
  const fromInput = (value) => new Date(`${value.length === 16 ? value + ':00' : value}+09:00`);
  review.elements.to.value = jstInput(new Date());
  review.elements.from.value = jstInput(new Date(Date.now() - 24 * 3600e3));
  const momentAt = (step) => new Date(period.from.getTime() + (period.to.getTime() - period.from.getTime()) * step / STEPS);
  async function showMoment(at) {
    const ask = ++shown;
    const asOf = encodeURIComponent(at.toISOString());
    const category = document.getElementById('bb-category').value;
    try {
      const [board, waiting] = await Promise.all([
        api(`/api/v1/views/bed_board?as_of=${asOf}${category ? `&category=${category}` : ''}`),
        api(`/api/v1/views/placement_queue?as_of=${asOf}`),
      ]);
      if (ask !== shown || !reviewAt) return;
      const b = plainEnums(board);
      const q = plainEnums(waiting);
      beds.replace(b.rows); areas = b.areas; prefecture = b.prefecture;
      queue.replace(q.rows);
      const note = t('rv.at').replace('{t}', fmtTime(at.toISOString()));
      document.getElementById('review-at').textContent = note;
      for (const p of document.querySelectorAll('.review-note')) { p.textContent = note; p.hidden = false; }
      renderBeds(); renderQueue();
    } catch (failure) {
      document.getElementById('review-error').textContent = `${t('error.failed')}: ${failure.message}`;
    }
  }
  function enterReview(step) {
    if (bedSource) bedSource.close();
    if (queueSource) queueSource.close();
    bedSource = null; queueSource = null;
    document.body.classList.add('reviewing');
    reviewAt = momentAt(step);
    showMoment(reviewAt);
  }
  function leaveReview() {
    if (playing) { clearInterval(playing); playing = null; }
    reviewAt = null; period = null;
    document.getElementById('review-controls').hidden = true;
    document.body.classList.remove('reviewing');
    for (const p of document.querySelectorAll('.review-note')) p.hidden = true;
    connectBeds(); connectQueue();
  }
  review.addEventListener('submit', (e) => {
    e.preventDefault();
    const error = document.getElementById('review-error');
    error.textContent = '';
    const from = fromInput(review.elements.from.value);
    let to = fromInput(review.elements.to.value);
    if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()) || from >= to) { error.textContent = t('rv.order'); return; }
    if (to.getTime() > Date.now() + 60e3) { error.textContent = t('rv.future'); return; }
    if (to.getTime() > Date.now()) to = new Date(Date.now() - 1000);
    period = { from, to };
    document.getElementById('review-controls').hidden = false;
    slider.value = String(STEPS);
    enterReview(STEPS);
  });
  let sliding = null;
  slider.addEventListener('input', () => {
    if (!period) return;
    clearTimeout(sliding);
    sliding = setTimeout(() => enterReview(Number(slider.value)), 150);
  });
  document.getElementById('review-play').addEventListener('click', (e) => {
    if (playing) { clearInterval(playing); playing = null; e.target.textContent = t('rv.play'); return; }
    if (Number(slider.value) >= STEPS) slider.value = '0';
    e.target.textContent = t('rv.pause');
    enterReview(Number(slider.value));
    playing = setInterval(() => {
      const next = Number(slider.value) + 1;
      if (next > STEPS) { clearInterval(playing); playing = null; e.target.textContent = t('rv.play'); return; }
      slider.value = String(next);
      enterReview(next);
    }, 1500);
  });
  document.getElementById('review-live').addEventListener('click', leaveReview);

  // How long patients waited at each step, and the facilities whose figures disagree with
  // the patients placed there: read again as the queue and the beds move.
  pokeSla = refreshing('placement_sla', {}, renderSla);
  pokeReconcile = refreshing('bed_reconciliation', { mismatched_only: 'true' }, (view) => {
    const rows = view.rows || [];
    document.querySelector('#reconcile tbody').replaceChildren(...(rows.length ? rows.map((r) => h('tr', { 'data-facility': r.facility_id, 'data-category': r.category },
      h('td', {}, facilityLabel(r.facility_id)), h('td', {}, enumLabel('cat', r.category)),
      h('td', { class: 'num' }, r.occupied || 0), h('td', { class: 'num' }, r.patients || 0),
      h('td', { class: 'num' }, `${r.held || 0} / ${r.holds || 0}`),
      h('td', {}, r.mismatch_since ? fmtTime(r.mismatch_since) : '—')))
      : [h('tr', {}, h('td', { colspan: 6, class: 'muted' }, t('rc.none')))]));
  });
  const proxy = document.getElementById('proxy-form');
  bindForm(proxy, 'DeclareCapacity', {});
  // A proxy entry starts from the figures the board shows for that facility and category,
  // so that HQ changes only what the facility reported by phone.
  const prefill = () => {
    const facility = proxy.querySelector('[name="facility_id"]').value.trim();
    const category = proxy.querySelector('[name="categories[0].category"]').value.replace(/^BED_CATEGORY_/, '');
    const row = beds.values().find((r) => r.facility_id === facility && r.category === category);
    if (!row) return;
    for (const field of FIGURES) {
      proxy.querySelector(`[name="categories[0].${field}"]`).value = row[field];
    }
  };
  proxy.querySelector('[name="facility_id"]').addEventListener('change', prefill);
  proxy.querySelector('[name="categories[0].category"]').addEventListener('change', prefill);
  // HQ's alert rules: the area choices follow the names once they are known.
  const areaChoices = () => {
    for (const select of document.querySelectorAll('select.area-choice')) {
      const chosen = select.value;
      select.replaceChildren(h('option', { value: '' }, t('hq.every_area')),
        ...[...areaNames.keys()].sort().map((code) => h('option', { value: code }, areaLabel(code))));
      select.value = chosen;
    }
  };
  // Each form shows the rule in force for what it names (the area's own, else every
  // area's), so that HQ changes a figure it can see.
  let inForce = [];
  const field = (form, name) => form.querySelector(`[name="rule.${name}"]`);
  const ruleOf = (kind, matches) => inForce.map((r) => r[kind]).filter(Boolean).find(matches);
  const showRules = () => {
    const occupancy = document.getElementById('occupancy-rule-form');
    const area = field(occupancy, 'occupancy.medical_area').value;
    const category = field(occupancy, 'occupancy.category').value;
    const occ = ruleOf('occupancy', (r) => r.medical_area === area && r.category === category)
      || ruleOf('occupancy', (r) => r.medical_area === '' && r.category === category);
    if (occ) {
      field(occupancy, 'occupancy.warning_percent').value = occ.warning_percent;
      field(occupancy, 'occupancy.critical_percent').value = occ.critical_percent;
    }
    const waiting = document.getElementById('waiting-rule-form');
    const waitingArea = field(waiting, 'waiting_limit.medical_area').value;
    const limit = ruleOf('waiting_limit', (r) => r.medical_area === waitingArea)
      || ruleOf('waiting_limit', (r) => r.medical_area === '');
    if (limit) field(waiting, 'waiting_limit.minutes').value = limit.minutes;
    const stale = ruleOf('stale_limit', () => true);
    if (stale) field(document.getElementById('stale-rule-form'), 'stale_limit.hours').value = stale.hours;
    const escalation = ruleOf('escalation_delay', () => true);
    if (escalation) field(document.getElementById('escalation-rule-form'), 'escalation_delay.minutes').value = escalation.minutes;
  };
  const loadRules = async () => {
    try {
      inForce = (await api('/api/v1/alert-rules')).rules;
      showRules();
    } catch (failure) {
      document.querySelector('#rules-panel .form-status').textContent = failure.message;
    }
  };
  for (const select of document.querySelectorAll('#rules-panel select')) select.addEventListener('change', showRules);
  areaChoices();
  for (const id of ['occupancy-rule-form', 'waiting-rule-form', 'stale-rule-form', 'escalation-rule-form']) {
    bindForm(document.getElementById(id), 'SetAlertRule', {}, loadRules);
  }
  loadRules();
  bindImport(document.getElementById('import-form'));
  rerenders.push(renderBeds, renderQueue, areaChoices);
  setInterval(() => {
    for (const node of document.querySelectorAll('.countdown[data-deadline]')) node.textContent = ' ' + fmtCountdown(node.dataset.deadline);
  }, 1000);
  setInterval(renderQueue, 30000);
};

/** `text` of `key` with its `{name}` placeholders filled from `values`. */
const say = (key, values) => t(key).replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ''));

/**
 * Sends a file to the import of `kind` (`cases`, `capacity`; docs/import.md), reading its NDJSON answer as it comes:
 * `onProgress(rows)` as rows are decided; resolves with the summary and every error.
 */
async function importFile(kind, file, encoding, dryRun, onProgress) {
  const response = await fetch(`/api/v1/import/${kind}?dry_run=${dryRun}&encoding=${encodeURIComponent(encoding)}`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'X-CSRF-Token': csrf(), Accept: 'application/x-ndjson', 'Content-Type': 'text/csv' },
    body: file,
  });
  if (response.status === 401) window.location.assign('/login');
  if (!response.ok) throw new ApiFailure(response.status, await response.json().catch(() => ({})));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const errors = [];
  let buffer = '', summary = null;
  const take = (line) => {
    if (!line.trim()) return;
    const value = JSON.parse(line);
    if (value.error) errors.push(value.error);
    else if (value.progress) onProgress(value.progress.rows);
    else if (value.summary) summary = value.summary;
  };
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split('\n');
    buffer = lines.pop();
    lines.forEach(take);
  }
  take(buffer);
  if (!summary) throw new ApiFailure(0, { message: 'the import ended without a summary' });
  return { summary, errors };
}

/** An import form (`data-import` names the kind of file): a dry run first, its report,
 *  then the real import. */
function bindImport(form) {
  if (!form) return;
  // The same controls on every page that imports a file.
  const said = (key) => ({ 'data-i18n': key, text: t(key) });
  form.append(
    h('label', {}, h('span', said('imp.file')), h('input', { type: 'file', name: 'file', accept: '.csv,text/csv' })),
    h('label', {}, h('span', said('imp.encoding')), h('select', { name: 'encoding' },
      h('option', { value: 'auto', ...said('imp.auto') }),
      h('option', { value: 'utf-8' }, 'UTF-8'),
      h('option', { value: 'shift_jis' }, 'Shift_JIS'))),
    h('button', { type: 'submit', ...said('imp.check') }),
    h('progress', { id: 'import-progress', hidden: true }),
    h('p', { class: 'form-status', role: 'status', id: 'import-status' }),
    h('div', { id: 'import-report' }),
    h('button', { type: 'button', id: 'import-run', hidden: true }));
  const status = form.querySelector('#import-status');
  const progress = form.querySelector('#import-progress');
  const report = form.querySelector('#import-report');
  const run = form.querySelector('#import-run');
  const input = form.querySelector('input[type=file]');
  let checked = null;
  const start = async (dryRun) => {
    const file = input.files[0];
    clearErrors(form);
    report.replaceChildren();
    run.hidden = true;
    if (!file) {
      status.className = 'form-status bad';
      status.textContent = t('imp.no_file');
      return;
    }
    for (const button of form.querySelectorAll('button')) button.disabled = true;
    progress.hidden = false;
    status.className = 'form-status';
    status.textContent = say('imp.reading', { n: 0 });
    try {
      const encoding = form.querySelector('[name=encoding]').value;
      const { summary, errors } = await importFile(form.dataset.import, file, encoding, dryRun,
        (rows) => { status.textContent = say('imp.reading', { n: rows }); });
      status.className = 'form-status ok';
      status.textContent = say(dryRun ? 'imp.checked' : 'imp.done', summary);
      if (summary.stopped) report.append(h('p', { class: 'field-error', role: 'alert' }, say('imp.stopped', { why: summary.stopped })));
      if (errors.length) {
        const shown = errors.slice(0, 200);
        report.append(h('table', { class: 'rows', id: 'import-errors' },
          h('thead', {}, h('tr', {}, ...['imp.line', 'imp.column', 'imp.field', 'imp.problem'].map((k) => h('th', {}, t(k))))),
          h('tbody', {}, ...shown.map((e) => h('tr', {},
            h('td', {}, String(e.line)), h('td', {}, e.column ? `${e.column}（${e.header}）` : '—'),
            h('td', {}, e.field), h('td', {}, e.message))))));
        if (errors.length > shown.length) report.append(h('p', { class: 'muted' }, say('imp.more', { n: errors.length - shown.length })));
      }
      checked = dryRun ? file : null;
      if (dryRun && summary.created > 0) {
        run.textContent = say('imp.run', { n: summary.created });
        run.hidden = false;
      }
    } catch (failure) {
      status.className = 'form-status bad';
      const reason = (failure.body.violations || [])[0];
      status.textContent = `${t('error.failed')}: ${reason ? reason.description : failure.message}`;
    } finally {
      progress.hidden = true;
      for (const button of form.querySelectorAll('button')) button.disabled = false;
    }
  };
  form.addEventListener('submit', (event) => { event.preventDefault(); start(true); });
  run.addEventListener('click', () => { if (checked === input.files[0]) start(false); });
  input.addEventListener('change', () => { run.hidden = true; report.replaceChildren(); status.textContent = ''; });
}

/** A case's SpO₂ trend as a small chart in `holder` (an audited read of its observations). */
async function drawTrend(holder, caseId) {
  holder.replaceChildren();
  try {
    const { observations } = await api(`/api/v1/cases/${caseId}/observations`);
    const points = observations.filter((o) => o.spo2_percent);
    if (points.length < 1) return;
    const w = 300, hgt = 90, lo = 80, hi = 100;
    const x = (i) => (points.length === 1 ? w / 2 : (i / (points.length - 1)) * (w - 10) + 5);
    const y = (v) => hgt - ((Math.max(lo, Math.min(hi, v)) - lo) / (hi - lo)) * (hgt - 10) - 5;
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', `0 0 ${w} ${hgt}`);
    const floor = document.createElementNS(ns, 'line');
    Object.entries({ x1: 0, x2: w, y1: y(93), y2: y(93), class: 'floor' }).forEach(([k, v]) => floor.setAttribute(k, v));
    const line = document.createElementNS(ns, 'polyline');
    line.setAttribute('class', 'line');
    line.setAttribute('points', points.map((p, i) => `${x(i)},${y(p.spo2_percent)}`).join(' '));
    svg.append(floor, line);
    for (const [i, p] of points.entries()) {
      const dot = document.createElementNS(ns, 'circle');
      Object.entries({ cx: x(i), cy: y(p.spo2_percent), r: 3, fill: 'currentColor' }).forEach(([k, v]) => dot.setAttribute(k, v));
      const title = document.createElementNS(ns, 'title');
      title.textContent = `${fmtTime(p.observed_at)} SpO₂ ${p.spo2_percent}%`;
      dot.append(title);
      svg.append(dot);
    }
    holder.append(svg, h('div', { class: 'muted' }, `SpO₂ ${points.map((p) => p.spo2_percent).join(' → ')}%`));
  } catch (failure) {
    holder.append(h('span', { class: 'muted' }, failure.message));
  }
}


/** The form that asks a consult center to see a patient remotely, for the panels of the
 *  health center's and the facilities' pages. */
function consultRequestForm() {
  const option = (group, value) => h('option', { value: `CONSULT_${group.toUpperCase()}_${value}`, 'data-i18n': `${group}.${value}` }, t(`${group}.${value}`));
  const field = (key, control) => h('label', {}, h('span', { 'data-i18n': key }, t(key)), control);
  return h('form', { id: 'consult-form', class: 'form', novalidate: true },
    h('h3', { 'data-i18n': 'cc.request' }, t('cc.request')),
    field('cc.mode', h('select', { name: 'mode' }, ['D_TO_P_WITH_N', 'D_TO_D', 'D_TO_P'].map((m) => option('mode', m)))),
    field('cc.urgency', h('select', { name: 'urgency' }, ['URGENT', 'EMERGENCY', 'ROUTINE'].map((u) => option('urgency', u)))),
    field('cc.question', h('textarea', { name: 'question', rows: 2 })),
    field('cc.contact', h('input', { name: 'contact', 'data-i18n-placeholder': 'cc.contact_hint', placeholder: t('cc.contact_hint') })),
    h('button', { type: 'submit', 'data-i18n': 'cc.request_button' }, t('cc.request_button')),
    h('p', { class: 'form-status', role: 'status' }));
}

/** The consults of one patient, newest first, as a requester's panel lists them;
 *  `escalate` draws the one-step escalation of a completed ESCALATE, if the panel offers it. */
function consultItems(consults, caseId, escalate) {
  return consults.values().filter((c) => c.case_id === caseId)
    .sort((a, b) => b.requested_at.localeCompare(a.requested_at))
    .map((c) => h('li', { 'data-consult': c.consult_id },
      h('strong', { class: 'consult-status' }, t('status.' + c.status)), ' ',
      enumLabel('urgency', c.urgency), c.center ? ` · ${facilityLabel(c.center)}` : '',
      c.scheduled_for ? ` · ${fmtTime(c.scheduled_for)} ${c.doctor || ''}` : '',
      c.recommendation ? ` · ${enumLabel('rec', c.recommendation)}` : '',
      c.findings ? h('div', { class: 'muted' }, c.findings) : null,
      c.recommendation === 'ESCALATE' && !c.escalated_to && escalate ? escalate(c) : null));
}

/** Statuses of a case whose patient is at home: a clinic or mobile clinic may care for them. */
const AT_HOME_STATUSES = ['REPORTED', 'HOME_CARE', 'AWAITING_PLACEMENT', 'PLACEMENT_IN_PROGRESS'];

/** The roles that care for patients at home. */
const CARE_SITE_ROLES = ['CLINIC', 'MOBILE_CLINIC'];

PAGES.hc = () => {
  const cases = new Rows((r) => r.case_id);
  let selected = null;

  function render() {
    const body = document.querySelector('#cases tbody');
    const all = cases.values();
    const wanted = searchKey(document.getElementById('case-search').value);
    const rows = all
      .filter((r) => !wanted || [r.name, r.name_kana, r.external_ref].some((text) => text && searchKey(text).includes(wanted)))
      .sort(byAttention);
    document.getElementById('case-count').textContent = t('hc.count').replace('$1', rows.length).replace('$2', all.length);
    body.replaceChildren(...rows.map((r) => h('tr', { 'data-case': r.case_id, class: selected === r.case_id ? 'selected' : '' },
      h('td', {}, r.name, r.name_kana ? h('div', { class: 'muted' }, r.name_kana) : null,
        r.external_ref ? h('div', { class: 'muted ref' }, r.external_ref) : null),
      h('td', { class: 'num' }, r.age),
      h('td', {}, enumLabel('sev', r.severity), r.deteriorated ? tag('deteriorated') : null),
      h('td', { class: 'num priority' }, r.priority, r.priority_overridden ? tag('overridden') : null),
      h('td', { class: 'num' }, r.last_spo2 === null || r.last_spo2 === undefined ? '' : `${r.last_spo2}%`),
      h('td', { class: 'case-status' }, t('status.' + r.status)),
      h('td', { class: 'placement-status' }, r.placement_status ? t('status.' + r.placement_status) : '', r.placement_target ? ` → ${facilityLabel(r.placement_target)}` : ''),
      h('td', {}, h('button', { type: 'button', class: 'secondary open', onclick: () => open(r.case_id) }, t('hc.open'))))));
    if (selected) fillPanel();
  }

  function current() { return cases.map.get(selected); }

  function fillPanel() {
    const r = current();
    // A case that left the board (closed while only open cases are shown) keeps its title
    // and the outcome of the last form; the panel says where the case went, and offers
    // nothing more to do with it. So does a closed case's panel.
    document.getElementById('case-gone').hidden = !!r;
    const closed = !r || !OPEN_CASE_STATUSES.includes(r.status);
    for (const form of document.querySelectorAll('#case-panel form')) form.hidden = closed;
    if (!r) return;
    document.getElementById('case-title').textContent = `${r.name}（${r.age}） ${enumLabel('sev', r.severity)} · ${t('status.' + r.status)}`
      + (r.care_site_id ? ` · ${t('hc.cared_by')} ${facilityLabel(r.care_site_id)}` : '');
    document.getElementById('case-timeline').href = `/timeline?case_id=${r.case_id}`;
    if (closed) return;
    document.getElementById('transport-form').hidden = !(r.placement_id && r.placement_status === 'ACCEPTED');
    document.getElementById('departure-form').hidden = !(r.placement_id && r.placement_status === 'TRANSPORT_ARRANGED');
    const pending = !!(r.placement_id && !['CANCELLED', 'ARRIVED'].includes(r.placement_status));
    document.getElementById('request-form').hidden = pending;
    // Home care from a reported or waiting case without a live placement; a live placement
    // can be cancelled until the patient arrives.
    document.getElementById('home-care-form').hidden = pending || !['REPORTED', 'AWAITING_PLACEMENT'].includes(r.status);
    document.getElementById('cancel-form').hidden = !pending;
    // A patient at home may be put in the care of a clinic or mobile clinic.
    const careSite = document.getElementById('care-site-form');
    careSite.hidden = !AT_HOME_STATUSES.includes(r.status);
    const sites = [...facilityNames.values()].filter((f) => f.kind === 'CLINIC' || f.kind === 'MOBILE_CLINIC')
      .sort((a, b) => a.facility_id.localeCompare(b.facility_id));
    const select = careSite.querySelector('[name="care_site_id"]');
    const wanted = [''].concat(sites.map((f) => f.facility_id)).join();
    if (select.dataset.options !== wanted || select.dataset.lang !== lang) {
      select.dataset.options = wanted;
      select.dataset.lang = lang;
      select.replaceChildren(h('option', { value: '' }, t('hc.care_site_none')),
        ...sites.map((f) => h('option', { value: f.facility_id }, localName(f))));
    }
    if (careSiteShown !== r.case_id + (r.care_site_id || '')) {
      careSiteShown = r.case_id + (r.care_site_id || '');
      select.value = r.care_site_id || '';
    }
    document.getElementById('case-consults').replaceChildren(...consultItems(consults, r.case_id,
      (c) => h('button', { type: 'button', class: 'secondary escalate-consult', onclick: (e) => act(e.target, 'EscalateConsult', {
        consult_id: c.consult_id, category: 'BED_CATEGORY_' + (r.severity === 'SEVERE' ? 'SEVERE' : 'MODERATE'),
      }) }, t('cc.escalate'))));
  }
  let careSiteShown = '';
  const consults = new Rows((c) => c.consult_id);
  live('consult_queue', {}, (view) => { consults.replace(view.rows); render(); },
    (delta) => { consults.apply(delta.rows, delta.removed); render(); });

  const trend = () => drawTrend(document.getElementById('spo2-trend'), selected);

  function open(caseId) {
    selected = caseId;
    document.getElementById('case-panel').hidden = false;
    document.getElementById('case-status').textContent = '';
    // Start the triage from the current severity; later updates leave the choice alone.
    // A triage states the risk factors and needs anew, so it starts from the case's own.
    const r = cases.map.get(caseId);
    if (r) {
      document.querySelector('#triage-form select[name="severity"]').value = 'SEVERITY_' + r.severity;
      checkChoices(document.querySelector('#triage-form [data-list="risk_factors"]'), r.risk_factors);
      checkChoices(document.querySelector('#triage-form [data-list="needs"]'), r.needs);
    }
    checkChoices(document.querySelector('#request-form [data-list="needs"]'), []);
    for (const form of document.querySelectorAll('#case-panel form')) clearErrors(form);
    render();
    trend();
    // The panel is below a board of perhaps hundreds of cases.
    document.getElementById('case-panel').scrollIntoView({ block: 'start' });
  }

  // Open cases only, unless closed ones are asked for: the server then sends (and audits
  // the reading of) only those. The search narrows what is shown, as the nurse types.
  let source = null;
  function connect() {
    if (source) source.close();
    const scope = document.getElementById('case-scope').value;
    source = live('case_board', scope === 'open' ? { status: OPEN_CASE_STATUSES } : {},
      (view) => { cases.replace(view.rows); render(); },
      (delta) => { cases.apply(delta.rows, delta.removed); render(); });
  }
  document.getElementById('case-scope').addEventListener('change', connect);
  document.getElementById('case-search').addEventListener('input', render);
  connect();
  bindForm(document.getElementById('report-form'), 'ReportCase', {}, (_, form) => form.reset());
  bindImport(document.getElementById('import-form'));
  // A birth date 65 or more years ago ticks the age risk factor (and a later one unticks it).
  const birthDate = document.querySelector('#report-form input[name="patient.birth_date"]');
  birthDate.addEventListener('change', () => {
    const age = ageInJapan(birthDate.value);
    if (age !== null) document.querySelector('#report-form input[value="RISK_FACTOR_AGE_65_PLUS"]').checked = age >= 65;
  });
  // A form of the case panel may hide once it did its work (a requested bed needs no
  // second request), so its outcome is said in the panel too.
  const done = (form) => {
    const title = form.querySelector('h3');
    document.getElementById('case-status').textContent = `${t('ok.saved')}: ${title ? title.textContent : ''}`;
  };
  const placement = () => ({ placement_id: (current() || {}).placement_id });
  bindForm(document.getElementById('observe-form'), 'RecordObservation',
    () => ({ case_id: selected, observed_at: new Date().toISOString() }), (_, form) => { form.reset(); done(form); trend(); });
  bindForm(document.getElementById('triage-form'), 'TriageCase', () => ({ case_id: selected }), (_, form) => done(form));
  bindForm(document.getElementById('request-form'), 'RequestPlacement', () => ({ case_id: selected }), (_, form) => done(form));
  bindForm(document.getElementById('transport-form'), 'ArrangeTransport', placement, (_, form) => done(form));
  bindForm(document.getElementById('departure-form'), 'RecordDeparture', placement, (_, form) => done(form));
  bindForm(document.getElementById('home-care-form'), 'StartHomeCare', () => ({ case_id: selected }), (_, form) => { form.reset(); done(form); });
  bindForm(document.getElementById('cancel-form'), 'CancelPlacement', placement, (_, form) => { form.reset(); done(form); });
  bindForm(document.getElementById('close-form'), 'CloseCase', () => ({ case_id: selected }), (_, form) => done(form));
  bindForm(document.getElementById('care-site-form'), 'AssignCareSite', () => ({ case_id: selected }), (_, form) => done(form));
  document.getElementById('consult-form-slot').replaceWith(consultRequestForm());
  bindForm(document.getElementById('consult-form'), 'RequestConsult', () => ({ case_id: selected }),
    (_, form) => { form.querySelector('[name="question"]').value = ''; done(form); });
  rerenders.push(render);
};

/** How a patient leaves a facility from its page. A move to another facility is a
 *  placement of its own (escalation, step-down, transfer), which keeps the bed here until
 *  the patient arrives there and then records the discharge by itself. */
const DISCHARGE_OUTCOMES = ['RECOVERED', 'DECEASED'];

/** The categories a facility may ask for to move a patient on: a hotel escalates to a
 *  hospital; a hospital transfers, or steps down to a hotel. */
const MOVE_ON = { HOTEL: ['MODERATE', 'SEVERE', 'MILD'], HOSPITAL: ['SEVERE', 'MODERATE', 'MILD', 'HOTEL_ROOM'] };

PAGES.facility = () => {
  const facility = document.querySelector('[data-facility]').dataset.facility;
  let inbox = null;
  // A clinic's or mobile clinic's patients at home, from its case board.
  const cared = new Rows((r) => r.case_id);
  // The outcome chosen for each patient, kept while live updates redraw the rows.
  const outcomes = new Map();
  const outcomeOf = (placement) => outcomes.get(placement) || 'DISCHARGE_OUTCOME_RECOVERED';

  // The capacity form starts from the current figures and follows them (HQ may enter
  // figures on the facility's behalf) until the bed manager starts typing; a declaration
  // done, it follows them again.
  const declare = document.getElementById('declare-form');
  let declareCategories = '';
  let declareEdited = false;
  declare.addEventListener('input', () => { declareEdited = true; });
  function showDeclare(rows) {
    if (!rows.length) return;
    const categories = rows.map((c) => c.category).join();
    if (categories !== declareCategories) {
      declareCategories = categories;
      declareEdited = false;
      document.querySelector('#declare-table tbody').replaceChildren(...rows.map((c, i) => h('tr', {},
        h('td', {}, h('input', { type: 'hidden', name: `categories[${i}].category`, value: 'BED_CATEGORY_' + c.category }), h('span', { 'data-i18n': 'cat.' + c.category }, enumLabel('cat', c.category))),
        ...FIGURES.map((figure) => h('td', {}, h('input', {
          name: `categories[${i}].${figure}`, inputmode: 'numeric', value: c[figure],
          'aria-label': `${enumLabel('cat', c.category)} ${t(figure)}`,
        }))))));
    } else if (!declareEdited) {
      rows.forEach((c, i) => FIGURES.forEach((figure) => { declare.elements[`categories[${i}].${figure}`].value = c[figure]; }));
    }
  }

  // The acceptance form offers the facility's own categories, each starting from its
  // current acceptance and constraints.
  const acceptance = document.getElementById('acceptance-form');
  let acceptanceBuilt = false;
  function showAcceptance() {
    const category = acceptance.querySelector('[name="category"]').value.replace(/^BED_CATEGORY_/, '');
    const row = (inbox.capacity || []).find((c) => c.category === category);
    if (!row) return;
    acceptance.querySelector('[name="acceptance"]').value = 'ACCEPTANCE_' + row.acceptance;
    checkChoices(acceptance.querySelector('[data-list="constraints"]'), row.constraints);
  }
  function buildAcceptance(rows) {
    if (acceptanceBuilt || !rows.length) return;
    acceptanceBuilt = true;
    acceptance.querySelector('[name="category"]').replaceChildren(...rows.map((c) =>
      h('option', { value: 'BED_CATEGORY_' + c.category, 'data-i18n': 'cat.' + c.category }, enumLabel('cat', c.category))));
    showAcceptance();
  }
  acceptance.querySelector('[name="category"]').addEventListener('change', showAcceptance);
  bindForm(acceptance, 'SetAcceptance', { facility_id: facility });

  function render() {
    if (!inbox) return;
    // The facility's categories, from the most acute, for the forms and the figures alike.
    const categories = [...(inbox.capacity || [])].sort(byCategory);
    showDeclare(categories);
    buildAcceptance(categories);
    document.getElementById('capacity').replaceChildren(...categories.map((c) => h('tr', { 'data-category': c.category },
      h('th', {}, enumLabel('cat', c.category)),
      h('td', {}, `${t('available')} ${c.available} · ${t('ready')} ${c.ready} · ${t('occupied')} ${c.occupied} · ${t('held')} ${c.held}`,
        h('div', { class: 'acceptance' }, acceptanceLabel(c)),
        c.declared_at ? h('div', { class: 'muted declared' }, `${t('declared_at')} ${fmtTime(c.declared_at)}`) : null,
        c.declared_at ? (c.stale ? tag('stale') : null) : tag('never'), c.overflow ? tag('overflow') : null))));
    const offers = document.querySelector('#offers tbody');
    offers.replaceChildren(...(inbox.offers.length ? inbox.offers.map((o) => h('tr', { 'data-placement': o.placement_id },
      h('td', {}, h('span', { class: 'countdown', 'data-deadline': o.offer_deadline }, fmtCountdown(o.offer_deadline))),
      h('td', {}, enumLabel('cat', o.category)),
      h('td', {}, o.age_band), h('td', {}, enumLabel('sex', o.sex)), h('td', {}, enumLabel('sev', o.severity)),
      h('td', {}, needsLabel(o.needs)), h('td', {}, t('origin.' + o.origin_kind), ' ', o.origin_area ? areaLabel(o.origin_area) : ''),
      h('td', {},
        h('button', { type: 'button', class: 'accept', onclick: (e) => act(e.target, 'AcceptPlacement', { placement_id: o.placement_id }) }, t('fac.accept')),
        ' ',
        h('form', { class: 'inline-form decline-form', onsubmit: (e) => {
          e.preventDefault();
          const reason = e.target.querySelector('input').value.trim();
          act(e.target.querySelector('button'), 'DeclinePlacement', { placement_id: o.placement_id, reason });
        } }, h('input', { name: 'reason', placeholder: t('fac.decline_reason') }), h('button', { type: 'submit', class: 'danger' }, t('fac.decline'))))))
      : [h('tr', {}, h('td', { colspan: 8, class: 'muted' }, t('fac.no_offers')))]));
    const inbound = document.querySelector('#inbound tbody');
    inbound.replaceChildren(...inbox.inbound.map((p) => h('tr', { 'data-placement': p.placement_id },
      h('td', {}, p.name), h('td', { class: 'num' }, p.age), h('td', {}, enumLabel('sev', p.severity)),
      h('td', { class: 'placement-status' }, t('status.' + p.status), p.hold_overdue ? tag('overdue') : null),
      h('td', {}, p.vehicle ? enumLabel('vehicle', p.vehicle) : ''), h('td', {}, fmtTime(p.pickup_at)),
      h('td', {}, p.status === 'IN_TRANSIT' ? h('button', { type: 'button', class: 'arrive', onclick: (e) => act(e.target, 'RecordArrival', { placement_id: p.placement_id }) }, t('fac.arrived')) : null,
        ' ', h('a', { href: `/timeline?placement_id=${p.placement_id}` }, t('timeline'))))));
    const placed = document.querySelector('#placed tbody');
    placed.replaceChildren(...inbox.placed.map((p) => h('tr', { 'data-placement': p.placement_id, 'data-case': p.case_id, class: p.case_id === selected ? 'selected' : null },
      h('td', {}, p.name), h('td', { class: 'num' }, p.age), h('td', {}, enumLabel('sev', p.severity)), h('td', {}, fmtTime(p.arrived_at)),
      h('td', { class: 'num spo2' }, p.last_spo2 ? `${p.last_spo2}%` : '', p.deteriorated ? tag('deteriorated') : null),
      h('td', { class: 'moving-on' }, p.moving_on_status
        ? [t('status.' + p.moving_on_status), p.moving_on_target ? ` ${t('fac.moving_to')} ${facilityLabel(p.moving_on_target)}` : '']
        : ''),
      h('td', {},
        h('button', { type: 'button', class: 'secondary open-patient', onclick: () => select(p.case_id) }, t('fac.open')),
        ' ',
        p.moving_on_status ? null : h('form', { class: 'inline-form discharge-form', onsubmit: (e) => {
          e.preventDefault();
          act(e.target.querySelector('button'), 'RecordDischarge', { placement_id: p.placement_id, outcome: outcomeOf(p.placement_id) });
        } },
        h('select', { name: 'outcome', 'aria-label': t('outcome'), onchange: (e) => outcomes.set(p.placement_id, e.target.value) },
          DISCHARGE_OUTCOMES.map((o) => h('option', { value: 'DISCHARGE_OUTCOME_' + o, selected: outcomeOf(p.placement_id) === 'DISCHARGE_OUTCOME_' + o }, t('discharge.' + o)))),
        h('button', { type: 'submit', class: 'secondary discharge' }, t('fac.discharge')))))));
    // A clinic or mobile clinic: the patients at home in its care. A mobile clinic, or a
    // clinic without beds, shows no bed panels.
    const caring = CARE_SITE_ROLES.includes(role);
    document.getElementById('cared-panel').hidden = !caring;
    const bedless = role === 'MOBILE_CLINIC' || (caring && !(inbox.capacity || []).length && !inbox.offers.length
      && !inbox.inbound.length && !inbox.placed.length);
    for (const section of document.querySelectorAll('section.beds')) section.hidden = bedless;
    const caredRows = cared.values().sort(byAttention);
    document.querySelector('#cared tbody').replaceChildren(...(caredRows.length ? caredRows.map((r) => h('tr', { 'data-case': r.case_id, class: r.case_id === selected ? 'selected' : null },
      h('td', {}, r.name), h('td', { class: 'num' }, r.age), h('td', {}, enumLabel('sev', r.severity)),
      h('td', {}, t('status.' + r.status)),
      h('td', { class: 'num spo2' }, r.last_spo2 ? `${r.last_spo2}%` : '', r.deteriorated ? tag('deteriorated') : null),
      h('td', {}, fmtTime(r.last_observed_at)),
      h('td', {}, h('button', { type: 'button', class: 'secondary open-patient', onclick: () => select(r.case_id) }, t('fac.open')))))
      : [h('tr', {}, h('td', { colspan: 7, class: 'muted' }, t('fac.no_cared')))]));
    renderPatient();
  }

  // The panel of one placed patient: its observations and the request that moves it on.
  // Its forms are drawn once, so live updates never wipe what a nurse is typing.
  let selected = null;
  const panel = document.getElementById('patient-panel');
  const role = document.body.dataset.role;
  document.querySelector('#escalate-form [name="category"]').replaceChildren(...(MOVE_ON[role] || MOVE_ON.HOSPITAL)
    .map((c) => h('option', { value: 'BED_CATEGORY_' + c, 'data-i18n': 'cat.' + c }, enumLabel('cat', c))));
  function select(caseId) {
    selected = caseId;
    for (const form of panel.querySelectorAll('form')) clearErrors(form);
    document.getElementById('patient-status').textContent = '';
    render();
    panel.scrollIntoView({ block: 'nearest' });
  }
  function renderPatient() {
    const p = selected && (inbox.placed.find((x) => x.case_id === selected) || cared.map.get(selected));
    panel.hidden = !p;
    if (!p) return;
    document.getElementById('patient-title').textContent = `${p.name}（${p.age}）`
      + (p.last_spo2 ? ` · SpO₂ ${p.last_spo2}%` : '') + (p.deteriorated ? ` · ${t('deteriorated')}` : '');
    const moving = !!p.moving_on_status;
    // A patient at home is placed by the health center; the care site asks a consult
    // center, whose ESCALATE opens the request.
    const atHome = !inbox.placed.some((x) => x.case_id === p.case_id);
    document.getElementById('escalate-form').hidden = moving || atHome;
    if (moving) document.getElementById('patient-status').textContent = t('fac.moving_live');
    // The patient's consults; a completed ESCALATE opens the placement request in one
    // step while the patient has none yet.
    document.getElementById('patient-consults').replaceChildren(...consultItems(consults, p.case_id, moving ? null
      : (c) => h('button', { type: 'button', class: 'secondary escalate-consult', onclick: (e) => act(e.target, 'EscalateConsult', {
        consult_id: c.consult_id, category: document.querySelector('#escalate-form [name="category"]').value,
      }) }, t('cc.escalate'))));
  }
  const consults = new Rows((c) => c.consult_id);
  document.getElementById('consult-form-slot').replaceWith(consultRequestForm());
  bindForm(document.getElementById('consult-form'), 'RequestConsult', () => ({ case_id: selected }),
    (_, form) => { form.querySelector('[name="question"]').value = ''; said(form); });
  live('consult_queue', {}, (view) => { consults.replace(view.rows); render(); },
    (delta) => { consults.apply(delta.rows, delta.removed); render(); });
  const said = (form) => {
    const title = form.querySelector('h3');
    document.getElementById('patient-status').textContent = `${t('ok.saved')}: ${title ? title.textContent : ''}`;
  };
  bindForm(document.getElementById('fac-observe-form'), 'RecordObservation',
    () => ({ case_id: selected, observed_at: new Date().toISOString() }), (_, form) => { form.reset(); said(form); });
  bindForm(document.getElementById('escalate-form'), 'RequestPlacement', () => ({ case_id: selected }), (_, form) => said(form));

  const offerArrivals = newcomers();
  // The facility's own figures that disagree with the patients placed here, read again as
  // its inbox (its patients and its capacity) moves.
  const pokeReconcile = refreshing('bed_reconciliation', { mismatched_only: 'true' }, (view) => {
    const rows = view.rows || [];
    document.getElementById('reconcile-notice').hidden = rows.length === 0;
    document.getElementById('reconcile-own').replaceChildren(...rows.map((r) => h('li', { 'data-category': r.category },
      t('rc.own').replace('{cat}', enumLabel('cat', r.category)).replace('{occupied}', r.occupied || 0)
        .replace('{patients}', r.patients || 0).replace('{since}', r.mismatch_since ? fmtTime(r.mismatch_since) : '—'))));
  });
  live('facility_inbox', { facility_id: facility }, (view) => {
    inbox = view;
    offerArrivals(inbox.offers.map((o) => o.placement_id), (id) => {
      const o = inbox.offers.find((x) => x.placement_id === id);
      notify(t('notify.offer'), `${enumLabel('cat', o.category)} · ${o.age_band} · ${enumLabel('sev', o.severity)}`, id);
    });
    render();
    pokeReconcile();
  });
  if (CARE_SITE_ROLES.includes(role)) {
    live('case_board', {}, (view) => { cared.replace(view.rows); render(); },
      (delta) => { cared.apply(delta.rows, delta.removed); render(); });
  }
  bindForm(declare, 'DeclareCapacity', { facility_id: facility }, () => { declareEdited = false; });
  bindImport(document.getElementById('import-form'));
  rerenders.push(render);
  setInterval(() => {
    for (const node of document.querySelectorAll('.countdown[data-deadline]')) {
      node.textContent = fmtCountdown(node.dataset.deadline);
      node.classList.toggle('soon', new Date(node.dataset.deadline) - Date.now() < 5 * 60 * 1000);
    }
  }, 1000);
};

/** The facts of a consult as its panels show them: what only identified readers see
 *  stays absent otherwise. */
function consultFacts(r) {
  const fact = (label, value) => (value ? [h('dt', {}, label), h('dd', {}, value)] : []);
  return [
    ...fact(t('cc.mode'), enumLabel('mode', r.mode)),
    ...fact(t('cc.urgency'), enumLabel('urgency', r.urgency)),
    ...fact(t('cc.requester'), facilityLabel(r.requested_by)),
    ...fact(t('cc.question'), r.question),
    ...fact(t('cc.contact'), r.contact),
    ...fact(t('cc.scheduled_for'), r.scheduled_for ? `${fmtTime(r.scheduled_for)} ${r.doctor || ''}` : ''),
    ...fact(t('cc.recommendation'), r.recommendation ? enumLabel('rec', r.recommendation) : ''),
    ...fact(t('cc.findings'), r.findings),
    ...fact(t('cc.follow_up_at'), fmtTime(r.follow_up_at)),
    ...fact(t('cc.escalated'), r.escalated_to ? '✓' : ''),
  ];
}

/** A consult center's queue: requests it may take (de-identified until it takes one),
 *  and the consults it scheduled, with the forms of each step. */
PAGES.consult = () => {
  const own = document.body.dataset.organisation;
  const consults = new Rows((r) => r.consult_id);
  let selected = null;
  const URGENCY = ['EMERGENCY', 'URGENT', 'ROUTINE'];
  const open = (r) => ['REQUESTED', 'SCHEDULED', 'IN_PROGRESS'].includes(r.status);
  function render() {
    const rows = consults.values().sort((a, b) => Number(open(b)) - Number(open(a))
      || URGENCY.indexOf(a.urgency) - URGENCY.indexOf(b.urgency) || a.requested_at.localeCompare(b.requested_at));
    document.querySelector('#consults tbody').replaceChildren(...(rows.length ? rows.map((r) => h('tr', {
      'data-consult': r.consult_id, class: r.consult_id === selected ? 'selected' : null,
    },
    h('td', {}, enumLabel('urgency', r.urgency), r.urgency === 'EMERGENCY' ? tag('overdue', 'urgency.EMERGENCY') : null),
    h('td', {}, enumLabel('mode', r.mode)), h('td', {}, r.age_band), h('td', {}, r.sex ? enumLabel('sex', r.sex) : ''),
    h('td', {}, r.severity ? enumLabel('sev', r.severity) : ''),
    h('td', { class: 'num' }, r.last_spo2 ? `${r.last_spo2}%` : '', r.deteriorated ? tag('deteriorated') : null),
    h('td', {}, facilityLabel(r.requested_by)),
    h('td', {}, open(r) ? fmtWait((Date.now() - new Date(r.requested_at)) / 1000) : ''),
    h('td', { class: 'consult-status' }, t('status.' + r.status)),
    h('td', {}, h('button', { type: 'button', class: 'secondary open-consult', onclick: () => select(r.consult_id) }, t('cc.open')))))
      : [h('tr', {}, h('td', { colspan: 10, class: 'muted' }, t('cc.none')))]));
    renderPanel();
  }
  const panel = document.getElementById('consult-panel');
  function select(id) {
    selected = id;
    for (const form of panel.querySelectorAll('form')) clearErrors(form);
    document.getElementById('consult-status').textContent = '';
    patientShown = null;
    document.getElementById('consult-trend').replaceChildren();
    document.getElementById('consult-timeline').replaceChildren();
    render();
  }
  // The patient's SpO₂ trend and history, newest first, once the center may see who it
  // is (when it opens a consult it took, or as it takes one).
  let patientShown = null;
  function showPatient(r) {
    patientShown = r.consult_id;
    drawTrend(document.getElementById('consult-trend'), r.case_id);
    document.getElementById('consult-timeline-link').href = `/timeline?case_id=${r.case_id}`;
    // Just taken, the history may trail the queue a moment: asked again a few times.
    const load = (tries) => api(`/api/v1/views/timeline?case_id=${r.case_id}`).then((view) => {
      if (patientShown === r.consult_id) {
        document.getElementById('consult-timeline').replaceChildren(...(view.entries || []).slice().reverse().slice(0, 12).map(timelineItem));
      }
    }).catch(() => {
      if (tries > 1 && patientShown === r.consult_id) setTimeout(() => load(tries - 1), 1000);
    });
    load(5);
  }
  function renderPanel() {
    const r = selected && consults.map.get(selected);
    panel.hidden = !r;
    if (!r) return;
    const identified = !!(r.identified && r.case_id);
    document.getElementById('consult-history').hidden = !identified;
    if (identified && patientShown !== r.consult_id) showPatient(r);
    document.getElementById('consult-title').textContent = r.identified
      ? `${r.name}（${r.age}） · ${t('status.' + r.status)}`
      : `${t('cc.deidentified')} · ${r.age_band} ${r.sex ? enumLabel('sex', r.sex) : ''}`;
    document.getElementById('consult-facts').replaceChildren(...consultFacts(r));
    const mine = r.center === own;
    document.getElementById('schedule-form').hidden = r.status !== 'REQUESTED';
    document.getElementById('start-form').hidden = !(mine && r.status === 'SCHEDULED');
    document.getElementById('missed-form').hidden = !(mine && r.status === 'SCHEDULED');
    document.getElementById('complete-form').hidden = !(mine && r.status === 'IN_PROGRESS');
  }
  // The result form shows the bed category with ESCALATE (a placement request follows the
  // result in one more step) and the time with FOLLOW_UP.
  const complete = document.getElementById('complete-form');
  const recommendation = complete.querySelector('[name="recommendation"]');
  const category = complete.querySelector('.escalate-only select');
  category.removeAttribute('name');
  category.id = 'escalate-category';
  function showRecommendation() {
    complete.querySelector('.escalate-only').hidden = recommendation.value !== 'RECOMMENDATION_ESCALATE';
    const followUp = complete.querySelector('.follow-up-only');
    followUp.hidden = recommendation.value !== 'RECOMMENDATION_FOLLOW_UP';
    followUp.querySelector('input').disabled = followUp.hidden;
  }
  recommendation.addEventListener('change', showRecommendation);
  showRecommendation();
  const said = (form) => {
    const title = form.querySelector('h3') || form.querySelector('button');
    document.getElementById('consult-status').textContent = `${t('ok.saved')}: ${title ? title.textContent : ''}`;
  };
  const consult = () => ({ consult_id: selected });
  bindForm(document.getElementById('schedule-form'), 'ScheduleConsult', consult, (_, form) => said(form));
  bindForm(document.getElementById('start-form'), 'StartConsult', consult, (_, form) => said(form));
  bindForm(document.getElementById('missed-form'), 'MarkConsultMissed', consult, (_, form) => said(form));
  bindForm(complete, 'CompleteConsult', consult, async (_, form) => {
    said(form);
    if (recommendation.value === 'RECOMMENDATION_ESCALATE') {
      try {
        await command('EscalateConsult', { consult_id: form.dataset.consult || selected, category: category.value });
        document.getElementById('consult-status').textContent = `${t('ok.saved')}: ${t('cc.escalated')}`;
      } catch (failure) {
        showFailure(form, failure);
      }
    }
  });
  // A new request a center may take: a notification and a sound.
  const requests = newcomers();
  const arrived = () => requests(consults.values().filter((r) => r.status === 'REQUESTED').map((r) => r.consult_id),
    (id) => { const r = consults.map.get(id); notify(t('notify.consult'), `${enumLabel('urgency', r.urgency)} · ${enumLabel('mode', r.mode)}`, id); });
  live('consult_queue', {}, (view) => { consults.replace(view.rows); arrived(); render(); },
    (delta) => { consults.apply(delta.rows, delta.removed); arrived(); render(); });
  rerenders.push(render);
};

/** One entry of a timeline: the event in the reader's words, when, who, and what it names. */
function timelineItem(e) {
  return h('li', {},
    h('strong', { 'data-event-type': e.event_type }, eventLabel(e.event_type)), ' ', fmtTime(e.occurred_at), ' · ', e.actor,
    e.facility_id ? ` · ${facilityLabel(e.facility_id)}` : '', e.status ? ` · ${t('status.' + e.status)}` : '',
    e.priority ? ` · ${t('priority')} ${e.priority}` : '',
    e.reason ? h('div', { class: 'muted reason' }, `${t('reason')}: ${e.reason}`) : null);
}

PAGES.timeline = () => {
  const params = new URLSearchParams(window.location.search);
  const subject = params.has('case_id') ? { case_id: params.get('case_id') } : { placement_id: params.get('placement_id') || '' };
  let entries = [];
  function render() {
    document.getElementById('timeline-subject').textContent = Object.entries(subject)
      .map(([k, v]) => `${t(k === 'case_id' ? 'timeline.case' : 'timeline.placement')} ${v}`).join('');
    document.getElementById('timeline').replaceChildren(...entries.map(timelineItem));
  }
  const source = live('timeline', subject, (view) => { entries = view.entries; render(); },
    // An event of one stream can be applied after a later one of another: keep position order.
    (delta) => { entries = entries.concat(delta.entries || []).sort((a, b) => a.position - b.position); render(); });
  source.addEventListener('error', (e) => {
    if (e.data) document.getElementById('timeline-error').textContent = JSON.parse(e.data).message;
  });
  rerenders.push(render);
};

/** Submits `form` as JSON to `path`; `shape` turns its values into the body. */
function bindJson(form, method, path, shape, onDone) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    try {
      const body = await api(path, { method, body: JSON.stringify(shape(formValues(form))) });
      const status = form.querySelector('.form-status');
      status.className = 'form-status ok';
      status.textContent = t('ok.saved');
      if (onDone) onDone(body, form);
    } catch (failure) {
      showFailure(form, failure);
    } finally {
      button.disabled = false;
    }
  });
}

PAGES.admin = () => {
  const admin = document.body.dataset.role === 'ADMIN';
  let users = [];
  let clients = [];

  async function loadUsers() {
    try {
      users = (await api('/api/v1/admin/users')).users;
      renderUsers();
    } catch (failure) {
      document.getElementById('users-error').textContent = `${t('error.failed')}: ${failure.message}`;
    }
  }

  function renderUsers() {
    document.querySelector('#users tbody').replaceChildren(...users.map((u) => h('tr', { 'data-user': u.username },
      h('td', {}, u.username), h('td', {}, u.display_name), h('td', {}, organisationCell(u.organisation_id)), h('td', {}, t('role.' + u.role)),
      h('td', {}, u.disabled ? t('adm.disabled') : (u.locked_until && new Date(u.locked_until) > Date.now() ? t('adm.locked') : t('adm.active'))),
      h('td', {},
        h('button', { type: 'button', class: 'secondary toggle', onclick: async (e) => {
          e.target.disabled = true;
          try {
            await api(`/api/v1/admin/users/${encodeURIComponent(u.username)}`, { method: 'PATCH', body: JSON.stringify({ disabled: !u.disabled }) });
            await loadUsers();
          } catch (failure) {
            e.target.after(h('span', { class: 'field-error' }, failure.message));
            e.target.disabled = false;
          }
        } }, u.disabled ? t('adm.enable') : t('adm.disable')),
        ' ',
        h('form', { class: 'inline-form reset-form', onsubmit: async (e) => {
          e.preventDefault();
          const input = e.target.querySelector('input');
          const note = e.target.querySelector('.form-status');
          try {
            await api(`/api/v1/admin/users/${encodeURIComponent(u.username)}/password`, { method: 'POST', body: JSON.stringify({ password: input.value }) });
            input.value = '';
            note.className = 'form-status ok';
            note.textContent = t('ok.saved');
          } catch (failure) {
            note.className = 'form-status bad';
            note.textContent = describe((failure.body.violations || [{ description: failure.message }])[0].description);
          }
        } }, h('input', { type: 'password', name: 'password', placeholder: t('adm.new_password'), autocomplete: 'new-password' }),
          h('button', { type: 'submit', class: 'secondary' }, t('adm.reset')), h('span', { class: 'form-status' }))))));
  }

  async function loadClients() {
    clients = (await api('/api/v1/admin/clients')).clients;
    document.getElementById('clients').replaceChildren(...clients.map((c) => h('li', { class: c.revoked_at ? 'muted' : '' },
      `${c.name} · ${facilityLabel(c.organisation_id)} · ${c.scopes.join(',')} · ${t('adm.expires')} ${fmtTime(c.expires_at)} `,
      c.revoked_at ? t('adm.revoked') : h('button', { type: 'button', class: 'danger', onclick: async (e) => {
        e.target.disabled = true;
        await api(`/api/v1/admin/clients/${c.client_id}/revoke`, { method: 'POST', body: '{}' }).catch(() => null);
        await loadClients();
      } }, t('adm.revoke')))));
  }

  async function loadWebhooks() {
    const { webhooks } = await api('/api/v1/webhooks');
    document.getElementById('webhooks').replaceChildren(...webhooks.map((w) => h('li', {
      'data-webhook': w.webhook_id, class: w.failing ? 'bad' : 'done',
    },
    `${facilityLabel(w.organisation_id)} · ${w.url} · ${w.kinds.length ? w.kinds.join(',') : t('all')} · ${t('adm.pending')} ${w.pending}`,
    w.failing ? h('strong', {}, ` · ${t('adm.failing')}`) : null, ' ',
    h('a', { href: `/api/v1/webhooks/${w.webhook_id}/deliveries` }, t('adm.deliveries')), ' ',
    h('button', { type: 'button', class: 'danger', onclick: async (e) => {
      e.target.disabled = true;
      await api(`/api/v1/webhooks/${w.webhook_id}`, { method: 'DELETE' }).catch(() => null);
      await loadWebhooks();
    } }, t('adm.delete')))));
  }

  async function loadAudit(params) {
    const status = document.querySelector('#audit-form .form-status');
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v));
    query.set('limit', '200');
    document.getElementById('audit-csv').href = `/api/v1/audit?${query}&format=csv`;
    try {
      const { records } = await api(`/api/v1/audit?${query}`);
      status.textContent = '';
      document.querySelector('#audit tbody').replaceChildren(...records.map((r) => h('tr', {},
        h('td', {}, fmtTime(r.at)), h('td', {}, r.kind), h('td', {}, r.principal_id), h('td', {}, r.via), h('td', {}, r.case_id || ''))));
    } catch (failure) {
      showFailure(document.getElementById('audit-form'), failure);
    }
  }

  // Every field is sent, empty or not, so that each missing one is named.
  bindJson(document.getElementById('user-form'), 'POST', '/api/v1/admin/users', (v) => ({
    username: v.username || '', display_name: v.display_name || '', organisation_id: v.organisation_id || '',
    role: v.role, password: v.password || '',
  }), (_, form) => { form.reset(); loadUsers(); });
  document.getElementById('audit-form').addEventListener('submit', (e) => {
    e.preventDefault();
    clearErrors(e.target);
    loadAudit(formValues(e.target));
  });
  if (admin) {
    document.getElementById('clients-panel').hidden = false;
    bindJson(document.getElementById('client-form'), 'POST', '/api/v1/admin/clients', (v) => ({
      name: v.name || '', organisation_id: v.organisation_id || '',
      scopes: String(v.scopes || '').split(',').map((x) => x.trim()).filter(Boolean),
      expires_in: Math.round(Number(v.expires_days || 0) * 86400),
    }), (issued) => {
      document.getElementById('client-token').textContent = t('adm.token_once') + issued.token;
      loadClients();
    });
    loadClients();
  }
  bindJson(document.getElementById('webhook-form'), 'POST', '/api/v1/webhooks', (v) => ({
    organisation_id: v.organisation_id || '', url: v.url || '',
    kinds: String(v.kinds || '').split(',').map((x) => x.trim()).filter(Boolean),
  }), (registered, form) => {
    form.reset();
    document.getElementById('webhook-secret').textContent = t('adm.secret_once') + registered.secret;
    loadWebhooks();
  });
  loadWebhooks().catch(() => null);
  setLive('live');
  loadUsers();
  loadAudit({});
  rerenders.push(renderUsers);
};

PAGES.public = () => {
  let stats = null;
  function render() {
    if (!stats) return;
    const block = (a) => h('div', { class: 'area', id: a.medical_area ? `area-${a.medical_area}` : 'area-prefecture' },
      h('h3', {}, a.medical_area ? `${t('area')} ${areaLabel(a.medical_area)}` : t('prefecture'),
        h('span', { class: 'totals' }, a.occupancy_rate === null || a.occupancy_rate === undefined ? '' : `${t('occupancy')} ${Math.round(a.occupancy_rate * 100)}%`)),
      h('table', { class: 'rows' }, h('tbody', {}, [...a.beds].sort(byCategory).map((b) => h('tr', { 'data-category': b.category },
        h('th', {}, enumLabel('cat', b.category)),
        h('td', { class: 'num' }, `${t('secured')} ${b.secured}`),
        h('td', { class: 'num' }, `${t('available')} ${b.available === null || b.available === undefined ? '—' : b.available}`))))));
    document.getElementById('public-stats').replaceChildren(block(stats.prefecture), ...stats.areas.map(block));
    const category = document.getElementById('map-category').value;
    renderAreaMap(document.getElementById('area-map'), new Map(stats.areas.filter((a) => a.medical_area).map((a) => {
      if (!category) return [a.medical_area, { rate: a.occupancy_rate, secured: a.beds.reduce((n, b) => n + (b.secured || 0), 0) }];
      const b = a.beds.find((x) => x.category === category) || {};
      const known = b.occupied !== null && b.occupied !== undefined;
      return [a.medical_area, { available: b.available, secured: b.secured || 0, occupied: known ? b.occupied : null,
        rate: b.secured && known ? b.occupied / b.secured : null }];
    })));
  }
  document.getElementById('map-category').addEventListener('change', render);
  live('public_stats', {}, (view) => { stats = view; render(); });
  rerenders.push(render);
};

document.addEventListener('DOMContentLoaded', () => {
  buildChoices();
  applyI18n();
  const button = document.getElementById('lang');
  if (button) button.addEventListener('click', () => setLang(lang === 'ja' ? 'en' : 'ja'));
  const nav = document.getElementById('nav-admin');
  if (nav && ['HQ', 'ADMIN'].includes(document.body.dataset.role)) nav.hidden = false;
  const page = document.body.dataset.page;
  if (PAGES[page]) {
    PAGES[page]();
    mountAlerts();
    loadNames();
  }
});
