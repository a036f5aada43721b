// The console's words, Chinese first, English on the switch. t(key) for a phrase, label(kind,
// value) for a value of the contract (typology, severity, status, ...) shown in words.
import { saveLang, savedLang } from "./session.js";

let lang = savedLang();

const WORDS = {
  zh: {
    title: "FundWatch 资金监测", switch: "English", signout: "退出", who_admin: "管理员（全部地区）", who_desk: "辖区 {region}",
    nav_overview: "总览", nav_queue: "预警队列", nav_institutions: "机构", nav_trace: "资金穿透", nav_report: "风险报告",
    signin_title: "登录监测平台", signin_hint: "请输入管理员发放的访问令牌（仅保存在本标签页中）。",
    token: "访问令牌", signin: "登录", signin_bad: "令牌无效或已停用。", signin_forbidden: "此令牌无权使用监测台（银行令牌不能查看预警）。",
    loading: "加载中…", error: "出错了：", not_available: "此功能的接口尚未在本服务器上提供。", none: "无",
    retry: "重试", back: "返回", all: "全部",
    typology: "类型", severity: "等级", status: "状态", institution: "机构", region: "地区", amount: "金额（元）",
    updated: "更新时间", created: "创建时间", assignee: "处理人", disposition: "处置方式", score: "评分",
    window: "时间窗", detector: "检测器", rule: "依据", revision: "版本", accounts: "账户", suppressed: "已屏蔽（不推送）",
    filters: "筛选", apply: "应用", reset: "重置", institution_id: "机构编号",
    select_all: "全选", selected: "已选", bulk_ack: "批量确认", bulk_assign: "批量分派", assign_to: "分派给",
    next_unassigned: "下一条未分派", no_unassigned: "没有待处理且未分派的预警。", live: "实时更新", updated_at: "更新于",
    alerts_none: "没有符合条件的预警。", bulk_done: "完成 {ok} 条，未完成 {failed} 条。", new_alerts: "新预警 {n} 条",
    alert: "预警", explanation: "说明", evidence: "证据", record_ids: "相关记录编号", metrics: "指标与阈值",
    metric: "指标", value: "数值", threshold: "阈值", crossed: "超过阈值", flows_chart: "资金流向",
    actions: "处置操作", note: "备注", acknowledge: "确认", assign: "分派", dispose: "处置", reopen: "重新打开", comment: "备注留痕",
    audit: "操作留痕", history: "变更记录", at: "时间", actor: "操作人", action: "操作", from_to: "状态变化", event: "事件",
    action_done: "已完成：{action}", no_actions: "尚无操作。", reason: "原因",
    overview: "监测总览", by_level: "按地区层级", by_typology: "按类型", by_severity: "按等级", by_status: "按状态",
    trend: "近30天预警趋势", ranking: "机构风险排名", risk_index: "风险指数", open_alerts: "未结预警", count: "数量",
    level_province: "省级", level_city: "市级", level_county: "县级",
    institutions: "机构名录", search: "搜索", type: "机构类型", name: "名称",
    dossier: "一户一档", profile: "基本信息", uscc: "统一社会信用代码", scope: "经营范围", licences: "许可", state: "状态",
    accounts_by_role: "账户（按用途）", account: "账户", bank: "银行", holder: "户名", role: "用途",
    products: "产品", product: "产品", declared_yield: "宣称年化收益", underlying_rate: "底层项目利率", term: "期限（天）",
    underlying_term: "底层期限（天）", investor_cap: "人数上限", related_parties: "关联方", relation: "关系",
    daily_flows: "近90天资金流入流出", inflow: "流入", outflow: "流出", screening: "登记筛查命中", keyword: "关键词", field: "字段",
    alert_count: "预警数", institution_count: "机构数", inst_with_alerts: "有预警的机构", disposed_count: "已处置",
    high_or_critical: "高及严重", show_all: "显示全部 {n} 条", disposed_alerts: "已处置预警", risk_components: "风险指数构成", component: "构成项", weight: "权重", points: "得分", alerts_of: "预警（含处置）",
    trace: "资金穿透", since: "起", until: "止", hops: "层数", run_trace: "开始穿透", hop: "层级", payer: "付款账户", payee: "收款账户",
    nodes: "账户节点", stops: "终止原因", left_out: "未展开的去向", monitored: "受监测账户", outside: "监测范围外账户", first_at: "首笔", last_at: "末笔", edges: "资金链路", trace_none: "该时段内没有从此账户流出的资金。", truncated: "结果已截断：",
    report: "风险评估报告", month: "月份", make_report: "生成报告", print: "打印", export_xlsx: "导出 XLSX",
    by_type: "按机构类型", by_region: "按地区", by_disposition: "按处置方式", total: "合计", period: "期间",
    downloaded: "已下载 {file}", no_chart: "图表组件不可用，仅显示表格。",
    nav_replays: "回放", replays: "回放对比", replay: "回放结果",
    replays_hint: "用已存储的记录重跑检测：现行阈值和模型（基准）与候选阈值或模型（候选）对比，由 fundwatch replay --save 保存；不影响现有预警。",
    replays_none: "尚无保存的回放。", saved_at: "保存时间", baseline: "基准", candidate: "候选", no_model: "无异常模型",
    gained: "新增", lost: "减少", regraded: "等级变化", baseline_alerts: "基准预警数", candidate_alerts: "候选预警数", records: "记录数",
    gained_alerts: "新增：仅候选产生的预警", lost_alerts: "减少：仅基准产生的预警", regraded_alerts: "等级变化的预警",
    by_institution: "按机构", alert_id: "预警编号", from_severity: "基准等级", truncated_lists: "各列表只列出金额最大的部分预警，统计数字包含全部。",
  },
  en: {
    title: "FundWatch monitoring", switch: "中文", signout: "Sign out", who_admin: "Administrator (every region)", who_desk: "Region {region}",
    nav_overview: "Overview", nav_queue: "Alert queue", nav_institutions: "Institutions", nav_trace: "Trace", nav_report: "Risk report",
    signin_title: "Sign in to the monitoring desk", signin_hint: "Enter the access token an administrator gave you (kept in this tab only).",
    token: "Access token", signin: "Sign in", signin_bad: "The token is not valid.", signin_forbidden: "This token may not use the desk console (bank tokens read no alerts).",
    loading: "Loading…", error: "Error: ", not_available: "This server does not offer this page's API yet.", none: "none",
    retry: "Retry", back: "Back", all: "All",
    typology: "Typology", severity: "Severity", status: "Status", institution: "Institution", region: "Region", amount: "Amount (CNY)",
    updated: "Updated", created: "Created", assignee: "Assignee", disposition: "Disposition", score: "Score",
    window: "Window", detector: "Detector", rule: "Rule", revision: "Revision", accounts: "Accounts", suppressed: "Suppressed (not delivered)",
    filters: "Filters", apply: "Apply", reset: "Reset", institution_id: "Institution id",
    select_all: "Select all", selected: "selected", bulk_ack: "Acknowledge selected", bulk_assign: "Assign selected", assign_to: "Assign to",
    next_unassigned: "Next unassigned", no_unassigned: "No open unassigned alert.", live: "Live", updated_at: "updated",
    alerts_none: "No alert matches.", bulk_done: "{ok} done, {failed} not done.", new_alerts: "{n} new",
    alert: "Alert", explanation: "Explanation", evidence: "Evidence", record_ids: "Record ids", metrics: "Metrics against thresholds",
    metric: "Metric", value: "Value", threshold: "Threshold", crossed: "Crossed", flows_chart: "Flows",
    actions: "Actions", note: "Note", acknowledge: "Acknowledge", assign: "Assign", dispose: "Dispose", reopen: "Reopen", comment: "Comment",
    audit: "Audit trail", history: "History", at: "At", actor: "By", action: "Action", from_to: "Status change", event: "Event",
    action_done: "Done: {action}", no_actions: "No action yet.", reason: "Reason",
    overview: "Overview", by_level: "By region level", by_typology: "By typology", by_severity: "By severity", by_status: "By status",
    trend: "Alerts over the last 30 days", ranking: "Institutions by risk index", risk_index: "Risk index", open_alerts: "Open alerts", count: "Count",
    level_province: "Province", level_city: "City", level_county: "County",
    institutions: "Institutions", search: "Search", type: "Type", name: "Name",
    dossier: "Dossier", profile: "Profile", uscc: "USCC", scope: "Business scope", licences: "Licences", state: "Status",
    accounts_by_role: "Accounts by role", account: "Account", bank: "Bank", holder: "Holder", role: "Role",
    products: "Products", product: "Product", declared_yield: "Declared yield", underlying_rate: "Underlying rate", term: "Term (days)",
    underlying_term: "Underlying term (days)", investor_cap: "Investor cap", related_parties: "Related parties", relation: "Relation",
    daily_flows: "Daily in and out, last 90 days", inflow: "In", outflow: "Out", screening: "Registration screening hits", keyword: "Keyword", field: "Field",
    alert_count: "Alerts", institution_count: "Institutions", inst_with_alerts: "Institutions with alerts", disposed_count: "Disposed",
    high_or_critical: "High or critical", show_all: "Show all {n}", disposed_alerts: "Disposed alerts", risk_components: "Risk index components", component: "Component", weight: "Weight", points: "Points", alerts_of: "Alerts and dispositions",
    trace: "Trace", since: "Since", until: "Until", hops: "Hops", run_trace: "Trace", hop: "Hop", payer: "From", payee: "To",
    nodes: "Accounts", stops: "Why it stops", left_out: "edges not followed", monitored: "Monitored account", outside: "Outside FundWatch", first_at: "First", last_at: "Last", edges: "Edges", trace_none: "No money left this account in that period.", truncated: "Cut short: ",
    report: "Risk assessment report", month: "Month", make_report: "Show report", print: "Print", export_xlsx: "Export XLSX",
    by_type: "By institution type", by_region: "By region", by_disposition: "By disposition", total: "Total", period: "Period",
    downloaded: "Downloaded {file}", no_chart: "Charts are unavailable; tables only.",
    nav_replays: "Replay", replays: "Replays", replay: "Replay",
    replays_hint: "The detectors run again over stored records: the live thresholds and model (baseline) against other thresholds or another model (candidate), saved by fundwatch replay --save; live alerts are untouched.",
    replays_none: "No saved replay yet.", saved_at: "Saved", baseline: "Baseline", candidate: "Candidate", no_model: "no anomaly model",
    gained: "Gained", lost: "Lost", regraded: "Regraded", baseline_alerts: "Baseline alerts", candidate_alerts: "Candidate alerts", records: "Records",
    gained_alerts: "Gained: raised by the candidate only", lost_alerts: "Lost: raised by the baseline only", regraded_alerts: "Regraded: another severity",
    by_institution: "By institution", alert_id: "Alert id", from_severity: "Baseline severity", truncated_lists: "Each list shows the alerts of the largest amounts only; the counts include them all.",
  },
};

const LABELS = {
  typology: {
    misappropriation: ["挪用客户资金", "Misappropriation"], reserve_shortfall: ["备付金缺口", "Reserve shortfall"],
    commingling: ["资金混同", "Commingling"], fund_pool: ["资金池", "Fund pool"],
    maturity_mismatch: ["期限错配", "Maturity mismatch"], excess_return: ["收益异常偏高", "Excess return"],
    self_financing: ["自融", "Self-financing"], disguised_clearing: ["变相跨行清算", "Disguised clearing"],
    investor_cap_breach: ["突破人数限制", "Investor cap breach"], rapid_growth: ["迅速扩张", "Rapid growth"],
    large_value: ["大额交易", "Large value"], anomaly: ["异常", "Anomaly"],
  },
  severity: { low: ["低", "Low"], medium: ["中", "Medium"], high: ["高", "High"], critical: ["严重", "Critical"] },
  status: { open: ["待处理", "Open"], acknowledged: ["已确认", "Acknowledged"], assigned: ["已分派", "Assigned"], disposed: ["已处置", "Disposed"] },
  disposition: {
    continue_supervision: ["持续监管", "Continue supervision"], rectify: ["限期整改", "Rectify"], close: ["关停取缔", "Close"],
    refer_judicial: ["移送司法", "Refer to judicial organs"], false_positive: ["误报", "False positive"],
  },
  role: {
    customer_custody: ["客户资金存管户", "Customer custody"], payment_reserve: ["备付金户", "Payment reserve"],
    own_operating: ["自有资金户", "Own operating"], related_party: ["关联方账户", "Related party"],
    investor: ["投资人", "Investor"], borrower: ["借款人", "Borrower"], other: ["其他", "Other"],
  },
  type: {
    p2p_lending: ["网络借贷", "P2P lending"], equity_crowdfunding: ["股权众筹", "Equity crowdfunding"],
    internet_insurance: ["互联网保险", "Internet insurance"], asset_management: ["资产管理", "Asset management"],
    payment: ["支付", "Payment"], real_estate: ["房地产", "Real estate"], other: ["其他", "Other"],
  },
  relation: {
    shareholder: ["股东", "Shareholder"], actual_controller: ["实际控制人", "Actual controller"],
    executive: ["高管", "Executive"], affiliate: ["关联企业", "Affiliate"],
  },
  terminal: {
    final_use: ["最终用途", "final use"], not_monitored: ["不在监测范围", "not monitored"],
    cycle: ["形成回路", "cycle"], hop_limit: ["达到层数上限", "hop limit"],
  },
  level: { province: ["省级", "Province"], city: ["市级", "City"], county: ["县级", "County"] },
  action: {
    acknowledge: ["确认", "Acknowledge"], assign: ["分派", "Assign"], dispose: ["处置", "Dispose"],
    reopen: ["重新打开", "Reopen"], comment: ["备注", "Comment"], created: ["生成", "Created"], updated: ["更新", "Updated"],
  },
};

export const TYPOLOGIES = Object.keys(LABELS.typology);
export const SEVERITIES = ["low", "medium", "high", "critical"];
export const STATUSES = ["open", "acknowledged", "assigned", "disposed"];
export const DISPOSITIONS = Object.keys(LABELS.disposition);

export function currentLang() {
  return lang;
}

export function setLang(next) {
  lang = next === "en" ? "en" : "zh";
  saveLang(lang);
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
}

export function t(key, values) {
  let text = WORDS[lang][key] ?? WORDS.zh[key] ?? key;
  for (const [name, value] of Object.entries(values || {})) text = text.replace(`{${name}}`, String(value));
  return text;
}

export function label(kind, value) {
  const pair = LABELS[kind] && LABELS[kind][value];
  if (!pair) return value === null || value === undefined ? "" : String(value);
  return pair[lang === "zh" ? 0 : 1];
}
