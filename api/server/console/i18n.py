"""Console labels in Chinese (the default) and English."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from api.server.auth import person
from api.server.notes import TIMES

LANGS = ("zh-CN", "en")
DEFAULT = "zh-CN"

_T: dict[str, tuple[str, str]] = {
    "app": ("StreetWatch 审核台", "StreetWatch review"),
    "queue": ("待审队列", "Queue"),
    "cases": ("案件", "Cases"),
    "cameras": ("摄像头", "Cameras"),
    "stats": ("统计", "Statistics"),
    "suppressions": ("屏蔽规则", "Suppressions"),
    "sign_in": ("登录", "Sign in"),
    "sign_out": ("退出", "Sign out"),
    "api_key": (
        "API 密钥（需 dispatch 或 review 权限）",
        "API key (with the dispatch or review scope)",
    ),
    "bad_key": ("密钥无效或已吊销", "Unknown or revoked key"),
    "signed_out": ("已退出", "Signed out"),
    "expired": ("会话已过期，请重新登录", "Your session has ended: sign in again"),
    "status": ("状态", "Status"),
    "type": ("类型", "Type"),
    "camera": ("摄像头", "Camera"),
    "zone": ("区域", "Zone"),
    "grid": ("单元网格", "Grid"),
    "department": ("处置单位", "Department"),
    "proposed": ("建议", "proposed"),
    "deadline": ("处置时限", "Deadline"),
    "overdue": ("超期", "Overdue"),
    "verification": ("核查", "Verification"),
    "verification_verified": ("摄像头核查：已消失", "Verified by the camera: gone"),
    "verification_not_verified": (
        "核查未通过：摄像头仍可见",
        "Not verified: the camera still sees it",
    ),
    "address": ("地址", "Address"),
    "position": ("位置", "Position"),
    "from": ("起", "From"),
    "until": ("止", "Until"),
    "apply": ("筛选", "Filter"),
    "all": ("全部", "All"),
    "newest": ("最新在前", "Newest first"),
    "oldest": ("最早在前", "Oldest first"),
    "first_seen": ("首次发现", "First seen"),
    "confirmed": ("确认", "Confirmed"),
    "cleared": ("消失", "Cleared"),
    "observation": ("观察", "Observation"),
    "plate": ("车牌", "Plate"),
    "plate_search": ("车牌号", "Plate number"),
    "dwell": ("停留", "Dwell"),
    "dwell_strip": ("停留过程", "Dwell strip"),
    "report": ("上报", "Report"),
    "last_seen": ("最后发现", "Last seen"),
    "class": ("目标", "Class"),
    "confidence": ("置信度", "Confidence"),
    "reports": ("上报", "Reports"),
    "sources": ("来源", "Sources"),
    "history": ("处理记录", "History"),
    "evidence": ("证据", "Evidence"),
    "no_evidence": ("无图片", "No image"),
    "no_rendition": ("无脱敏图片", "No de-identified image"),
    "view_original": ("原图（每次查看均记录审计）", "Originals (every view is audited)"),
    "view_deidentified": ("脱敏图（人头、车牌已模糊）", "De-identified (heads and plates blurred)"),
    "show_deidentified": ("看脱敏图", "Show de-identified"),
    "show_original": ("看原图", "Show originals"),
    "original_removed": ("原图已按保留期限删除", "original deleted (retention)"),
    "audit": ("原图查看记录", "Original views"),
    "audit_intro": (
        "每次在审核台查看原图（未脱敏）的记录：谁、哪张图、哪个案件、何时。",
        "Every time the console showed someone an original (not de-identified) image: "
        "who, which image, which case, when.",
    ),
    "when": ("时间", "When"),
    "who": ("查看人", "Who"),
    "image": ("图片", "Image"),
    "event_code": ("事件编码", "Event code"),
    "empty_queue": ("队列已清空", "The queue is empty"),
    "new_cases": ("有新案件", "New cases arrived"),
    "accept": ("立案", "Accept"),
    "reject": ("注销", "Reject"),
    "duplicate_of": ("标为重复", "Duplicate of"),
    "dispatch": ("派遣", "Dispatch"),
    "resolve": ("处置完毕", "Resolve"),
    "close": ("结案", "Close"),
    "reason": ("原因", "Reason"),
    "note": ("备注", "Note"),
    "expires": ("有效至（可选）", "Expires (optional)"),
    "expires_at": ("有效至", "Expires"),  # read-only, not the form's label
    "schedule": (
        "时段（可选，如 mon-fri 06:00-09:00）",
        "Schedule (optional, e.g. mon-fri 06:00-09:00)",
    ),
    "schedule_short": ("时段", "Schedule"),
    "suppress_hint": (
        "以“许可”或“固定设施”注销会屏蔽此摄像头、区域、类型和位置：摄像头不再上报",
        "Rejecting as permitted or fixture suppresses this camera, zone, type and box: "
        "the cameras stop reporting it",
    ),
    "confirm": ("确定", "Confirm"),
    "cancel": ("取消", "Cancel"),
    "no_nearby": ("附近没有未结案件", "No open cases nearby"),
    "actions": ("操作", "Actions"),
    "not_allowed": ("当前状态下不可用", "Not available in this status"),
    "prev": ("上一件", "Previous"),
    "next": ("下一件", "Next"),
    "back": ("返回队列", "Back to queue"),
    "keys_help": (
        "键盘：j/k 上下 · Enter 打开 · a 立案 · r 注销 · d 重复 · p 派遣 · v 处置 · c 结案 "
        "· u 返回",
        "Keys: j/k move · Enter open · a accept · r reject · d duplicate · p dispatch · "
        "v resolve · c close · u back",
    ),
    "at": ("时间", "When"),
    "actor": ("操作人", "By"),
    "change": ("变更", "Change"),
    "state": ("状态", "State"),
    "last_picture": ("最近画面", "Last picture"),
    "reported_at": ("上报时间", "Reported"),
    "cases_day": ("24 小时案件", "Cases, last day"),
    "no_picture": ("无画面", "No picture"),
    "created": ("创建", "Created"),
    "active": ("生效", "Active"),
    "inactive": ("停用", "Inactive"),
    "save": ("保存", "Save"),
    "delete": ("删除", "Delete"),
    "disable": ("停用", "Disable"),
    "enable": ("启用", "Enable"),
    "case": ("案件", "Case"),
    "box": ("位置框", "Box"),
    "reviewed_box": ("审核位置框", "Reviewed box"),
    "correct_box": ("修正位置框", "Correct box"),
    "box_hint": (
        "证据图像素坐标 x1, y1, x2, y2（用作训练数据）",
        "x1, y1, x2, y2 in evidence pixels (training data)",
    ),
    "annotated": ("带框下载", "Annotated"),
    "box_saved": ("位置框已保存", "Box saved"),
    "box_draw_hint": (
        "在图上拖动画出位置框，或直接输入",
        "Drag on an image to draw the box, or type it",
    ),
    "none": ("无", "None"),
    "never": ("永久", "Never"),
    "always": ("全天", "Always"),
    "saved": ("已保存", "Saved"),
    "deleted": ("已删除", "Deleted"),
    "day": ("日期", "Day"),
    "group_by": ("分组", "Group by"),
    "accepted_n": ("立案", "Accepted"),
    "rejected_n": ("注销", "Rejected"),
    "pending_n": ("待审", "Pending"),
    "acceptance": ("立案率", "Acceptance rate"),
    "cases_n": ("案件数", "Cases"),
    "reports_n": ("上报数", "Reports"),
    "to_accept": ("上报→立案中位时长", "Median report → accepted"),
    "to_close": ("上报→结案中位时长", "Median report → closed"),
    "by_reason": ("注销原因", "Rejected by reason"),
    "csv": ("下载 CSV", "Download CSV"),
    "total": ("合计", "Total"),
    "per_day": ("每日上报与审核", "Reports and verdicts per day"),
    "forbidden": (
        "此密钥没有 dispatch（审核调度）权限：查看和处理案件需要它",
        "This key lacks the 'dispatch' scope, which reading and acting on cases needs",
    ),
    "refused": ("操作被拒绝", "Refused"),
    "done": ("完成", "Done"),
    "lang_switch": ("English", "中文"),
    "detail": ("详情", "Detail"),
    "selected": ("已选", "Selected"),
    "count": ("数量", "Count"),
    "map": ("地图", "Map"),
    "open_cases": ("未结案件", "Open cases"),
    "age_hour": ("1 小时内", "Under 1 h"),
    "age_day": ("1 天内", "Under 1 day"),
    "age_older": ("更早", "Older"),
    "view_direction": ("扇形为朝向", "cone: view direction"),
    "map_empty": (
        "没有可画的内容：请导入单元网格，或等待带位置的案件",
        "Nothing to draw: import the grid, or wait for cases with a place",
    ),
    "map_done": ("空心：已处置、结案或注销", "hollow: resolved, closed or rejected"),
    "at_camera": ("虚线：未标定，画在摄像头处", "dashed: not calibrated, drawn at the camera"),
    "unplaced": ("无位置、未画出的案件", "Cases with no place, not drawn"),
    "supervision": ("监督评价", "Supervision"),
    "routed": ("按路由", "routed"),
    "urgency": ("紧急程度", "Urgency"),
    "urgency_normal": ("一般", "Normal"),
    "urgency_urgent": ("紧急", "Urgent"),
    "sv_at": ("超期按此刻计算：", "Overdue as of"),
    "sv_by_department": ("处置单位", "Department"),
    "sv_by_grid": ("单元网格", "Grid cell"),
    "sv_by_type": ("类型", "Type"),
    "sv_by_camera": ("摄像头", "Camera"),
    "sv_by_reviewer": ("审核人", "Reviewer"),
    "sv_reported": ("上报", "Reported"),
    "sv_accepted": ("立案", "Accepted"),
    "sv_dispatched": ("派遣", "Dispatched"),
    "sv_resolved": ("处置", "Resolved"),
    "sv_resolved_on_time": ("按期处置", "Resolved on time"),
    "sv_closed": ("结案", "Closed"),
    "sv_overdue_now": ("当前超期", "Overdue now"),
    "sv_acceptance_rate": ("立案率", "Acceptance rate"),
    "sv_on_time_rate": ("按期处置率", "On-time rate"),
    "sv_closure_rate": ("结案率", "Closure rate"),
    "sv_to_accept": ("上报→立案", "Report → accepted"),
    "sv_to_dispatch": ("立案→派遣", "Accepted → dispatched"),
    "sv_to_resolve": ("派遣→处置", "Dispatched → resolved"),
    "sv_to_close": ("处置→结案", "Resolved → closed"),
    "sv_median": ("中位", "median"),
    "sv_counts": ("案件流转", "Cases through the workflow"),
    "sv_rates": ("立案率 · 按期处置率 · 结案率", "Acceptance · on-time · closure rates"),
    "sv_hint": (
        "统计期内上报的案件（重复件计入其合并到的案件）；立案率 = 立案/上报，"
        "按期处置率 = 按期处置/派遣，结案率 = 结案/立案",
        "Cases reported in the period (duplicates count in the case they joined); acceptance "
        "= accepted / reported, on time = resolved on time / dispatched, closure = closed / "
        "accepted",
    ),
    "decision_accepted": ("立案", "Accept"),
    "decision_rejected": ("注销", "Reject"),
    "decision_duplicate": ("标为重复", "Duplicate"),
    "decision_dispatched": ("派遣", "Dispatch"),
    "decision_resolved": ("处置完毕", "Resolve"),
    "decision_closed": ("结案", "Close"),
    "rv_resolved_not_verified": ("处置后核查未通过", "Resolved, not verified"),
    "sv_none": ("（未指定）", "(none)"),
    "rv_decisions": ("审核决定", "Decisions"),
    "rv_outcomes": ("决定的后续结果", "What became of the decisions"),
    "rv_closed": ("已结案", "closed"),
    "rv_not_verified": ("核查未通过", "not verified"),
    "rv_reversed": ("后被注销", "reversed"),
    "rv_re_reported": ("再次上报", "re-reported"),
    "rv_accepted_closed": ("立案后结案", "Accepted, closed"),
    "rv_accepted_not_verified": ("立案后核查未通过", "Accepted, not verified"),
    "rv_rejected_re_reported": ("注销后再次上报", "Rejected, re-reported"),
    "rv_hint": (
        "统计期内由人（带密钥）作出的状态变更；“再次上报”：注销后同一摄像头、区域、类型又上报了新案件；"
        "“核查未通过”：决定之后摄像头仍看到目标、案件被退回",
        "Status changes people (with a key) made in the period; re-reported: after a "
        "rejection, the same camera, zone and type reported a new case; not verified: after "
        "the decision the camera still saw the object and the case went back",
    ),
}

STATUS = {
    "reported": ("待受理", "Reported"),
    "accepted": ("已立案", "Accepted"),
    "dispatched": ("已派遣", "Dispatched"),
    "resolved": ("已处置", "Resolved"),
    "closed": ("已结案", "Closed"),
    "rejected": ("已注销", "Rejected"),
    "duplicate": ("重复", "Duplicate"),
}
TYPE = {
    "illegal_parking": ("违章停车", "Illegal parking"),
    "street_stall": ("占道经营", "Street stall"),
    "garbage": ("暴露垃圾", "Exposed garbage"),
}
REASON = {
    "false_detection": ("误报", "False detection"),
    "permitted": (
        "许可（持证摊位、装卸区、集市日）",
        "Permitted (licensed stall, loading bay, market day)",
    ),
    "fixture": (
        "固定设施（垃圾桶、长椅、常驻拖车）",
        "Fixture (bin, bench, trailer that belongs there)",
    ),
    "duplicate": ("重复", "Duplicate"),
    "other": ("其他", "Other"),
    "unspecified": ("未注明", "Unspecified"),
}
REASON_SHORT = {
    "false_detection": ("误报", "False detection"),
    "permitted": ("许可", "Permitted"),
    "fixture": ("固定设施", "Fixture"),
    "duplicate": ("重复", "Duplicate"),
    "other": ("其他", "Other"),
    "unspecified": ("未注明", "Unspecified"),
}
CAMERA_STATE = {
    "up": ("在线", "Up"),
    "reconnecting": ("重连中", "Reconnecting"),
    "dead": ("离线", "Dead"),
    "frozen": ("画面冻结", "Frozen"),
    "scene_changed": ("画面变化", "Scene changed"),
    "stopped": ("已停止", "Stopped"),
    "unknown": ("未上报", "Not reported"),
    "silent": ("失联（5 分钟无上报）", "Silent (no report for 5 min)"),
}
KIND = {
    "created": ("上报立档", "Reported"),
    "merged": ("合并上报", "Report merged"),
    "observation": ("观察更新", "Observation"),
    "transition": ("状态变更", "Transition"),
    "box_corrected": ("位置框修正", "Box corrected"),
    "overdue": ("超期", "Overdue"),
    "verified": ("摄像头核查", "Verified by the camera"),
}
# Who makes changes on the server's own (no key): the overdue watch, the camera's check.
SERVER_ACTORS = {"system": ("系统", "System"), "camera": ("摄像头", "Camera")}
# The server's own notes on changes, by their code (api/server/notes.py); `said` is a
# person's words that went with one, shown as written.
NOTES = {
    "overdue": (
        "{department} 超过处置时限（{deadline}）",
        "{department} passed its deadline ({deadline})",
    ),
    "verified": (
        "摄像头于 {cleared_at} 看到目标已消失",
        "The camera saw the object gone at {cleared_at}",
    ),
    "not_verified": (
        "核查未通过：处置于 {resolved_at}，摄像头在 {last_seen} 仍看到目标",
        "Not verified: resolved at {resolved_at}, the camera still saw the object at {last_seen}",
    ),
    "closed_verified": (
        "结案：摄像头核查目标已消失",
        "Closed: the camera verified the object gone",
    ),
    "absorbed_case": (
        "并入案件 {case}（标为其重复）",
        "Absorbed case {case}, marked its duplicate",
    ),
    "absorbed_report": ("并入上报 {report}（{source}）", "Absorbed report {report} ({source})"),
    "absorbed_report_superseding": (
        "并入上报 {report}（{source}），取代 {superseded}",
        "Absorbed report {report} ({source}); it supersedes {superseded}",
    ),
}
MESSAGES = {
    "earlier-plate-cases": (
        "30 天内此车牌另有 {n} 起案件",
        "{n} earlier cases of this plate in 30 days",
    ),
    "invalid-transition": (
        "不能从“{current}”转为“{to}”。可选：{allowed}",
        "A case cannot go from {current} to {to}. Allowed: {allowed}",
    ),
    "status-conflict": (
        "案件已被他人处理，当前为“{current}”，请查看后再操作",
        "Someone else acted first: the case is now {current}",
    ),
    "done": ("案件 {case}：{to}", "Case {case}: {to}"),
    "no_console_scope": (
        "此密钥没有 dispatch（审核调度）权限，不能登录审核台（它的权限：{scopes}）",
        "This key lacks the 'dispatch' scope the console needs (its scopes: {scopes})",
    ),
    "too_many": (
        "登录尝试过于频繁，请 {seconds} 秒后再试",
        "Too many sign-in attempts: try again in {seconds} s",
    ),
}


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGS else DEFAULT
        self.i = 0 if self.lang == "zh-CN" else 1

    def __call__(self, key: str) -> str:
        pair = _T.get(key)
        return pair[self.i] if pair else key

    def _of(self, table: dict[str, tuple[str, str]], key: str | None) -> str:
        if key is None:
            return "—"
        pair = table.get(key)
        return pair[self.i] if pair else key

    def status(self, key: str | None) -> str:
        return self._of(STATUS, key)

    def type(self, key: str | None) -> str:
        return self._of(TYPE, key)

    def reason(self, key: str | None) -> str:
        return self._of(REASON, key)

    def reason_short(self, key: str | None) -> str:
        return self._of(REASON_SHORT, key)

    def camera_state(self, key: str | None) -> str:
        return self._of(CAMERA_STATE, key)

    def kind(self, key: str | None) -> str:
        return self._of(KIND, key)

    def actor(self, actor: str, api_key_id: str | None) -> str:
        """Who made a change: the server's own actors (no key) in the reader's language, a
        person by name without the key prefix (`auth.person`)."""
        if api_key_id is None:
            return self._of(SERVER_ACTORS, actor)
        return person(actor)

    def note(
        self, note: str | None, data: Mapping[str, Any], when: Callable[[datetime], str]
    ) -> str:
        """A change's note to show: a system note in the reader's language (its times
        through `when`), a person's own as written."""
        pair = NOTES.get(data.get("note_code") or "")
        if pair is None:
            return note or ""
        args = dict(data.get("note_args") or {})
        for name in TIMES & args.keys():
            args[name] = when(datetime.fromisoformat(args[name]))
        text = pair[self.i].format(**args)
        said = args.get("said")
        return f"{text}{'：' if self.i == 0 else ': '}{said}" if said else text

    def message(self, key: str, **values: str) -> str:
        pair = MESSAGES[key]
        return pair[self.i].format(**values)
