"""The error types the package raises at its boundaries, and the registry of their codes.

An error carries a message for the user and a stable `code`. `ERRORS` holds every code once: its
HTTP status (the REST API), its WebSocket close code (/api/stream) and a sentence in English and
Chinese (the page, in the user's language); the APIs, the MCP tools and the page all read it.
"""

from __future__ import annotations

from dataclasses import dataclass


class EmotionAppError(Exception):
    """Base class: a message for the user, and a stable `code` for translation and APIs."""

    code = "error"
    retry_after_s: int | None = None  # a refusal for now (a busy or full server): when to try again, in s

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class ErrorText(str):
    """An error's message as a plain string that keeps the error's `code`: a batch row's error,
    which the page translates by its code while files and logs keep the message."""

    code = "error"

    def __new__(cls, message: str, code: str | None = None):
        text = super().__new__(cls, message)
        if code is not None:
            text.code = code
        return text


class AudioError(EmotionAppError):
    """The input could not be turned into 16 kHz mono audio (the message says why)."""

    code = "bad_audio"


class ModelLoadError(EmotionAppError):
    """The model folder, checkpoint or hub download is unusable (the message says how to fix it)."""

    code = "model_load"


@dataclass(frozen=True)
class ErrorCode:
    """What one error code means at each boundary: the REST API's HTTP status, the live stream's
    WebSocket close code, and a sentence in English and in Chinese. The English sentence answers
    where there is no message of its own (an internal error, a refused login); the page shows the
    Chinese one followed by the raised message as detail (web/i18n)."""

    status: int
    en: str
    zh: str
    close: int = 1008  # /api/stream's close code; 1008: policy violation


@dataclass(frozen=True)
class WarningCode:
    """A warning's sentence in English and Chinese (`AudioWarning.code`: the result is given, with a caveat)."""

    en: str
    zh: str


# Every code the package raises: tests/test_errors.py scans emotion_app/ for codes and fails on one missing here.
ERRORS: dict[str, ErrorCode] = {
    "error": ErrorCode(400, "The request failed.", "处理失败。"),
    # the input (AudioError and the request's audio)
    "bad_audio": ErrorCode(400, "The audio could not be read.", "无法读取音频。"),
    "no_audio": ErrorCode(400, "No audio was given: upload or record a file first.", "没有音频：请先上传或录制。"),
    "bad_input": ErrorCode(
        400,
        "Audio cannot be read from this kind of input: give a path, bytes, a file object, an array with its sample rate, "
        "or a (rate, array) pair.",
        "无法从这种输入读取音频：请提供文件路径、字节、文件对象、带采样率的数组或（采样率, 数组）。",
    ),
    "not_found": ErrorCode(404, "No such file.", "找不到该文件。"),
    "empty": ErrorCode(400, "The file is empty: it holds no audio.", "文件为空，没有音频内容。"),
    "not_audio": ErrorCode(
        400,
        "Not an audio or video file that can be decoded; supported: WAV, MP3, M4A, FLAC, OGG, OPUS, WEBM, the audio of videos.",
        "无法解码：这不是可识别的音频或视频文件。支持 WAV、MP3、M4A、FLAC、OGG、OPUS、WEBM 及视频中的音轨。",
    ),
    "no_audio_track": ErrorCode(400, "The file has no audio track.", "该文件没有音轨。"),
    "corrupt": ErrorCode(400, "The audio stream is corrupt or truncated.", "音频流已损坏或被截断。"),
    "truncated": ErrorCode(
        400,
        "The file is truncated or corrupt: its header declares more audio than it holds.",
        "文件已被截断或损坏：文件头声明的长度与实际内容不符。",
    ),
    "bad_rate": ErrorCode(400, "The sample rate is invalid: give it in Hz as a whole number.", "采样率无效。"),
    "bad_array": ErrorCode(
        400,
        "The samples must be a 1-D or 2-D array of float or integer PCM.",
        "采样数据无效：需要一维或二维的浮点或整数 PCM 数组。",
    ),
    "not_finite": ErrorCode(
        400, "The audio contains NaN or infinite sample values; it is corrupt.", "音频包含 NaN 或无穷大的采样值，文件已损坏。"
    ),
    "too_long": ErrorCode(
        400, "The audio is longer than the limit; cut it and try again.", "音频太长，超过了时长上限。请剪短后再试。"
    ),
    "too_short": ErrorCode(400, "The audio is too short: the model needs at least 25 ms.", "音频太短：模型至少需要 25 毫秒。"),
    "too_large": ErrorCode(413, "The file is larger than the upload limit.", "文件太大，超过了上传大小上限。"),
    "mono": ErrorCode(
        400,
        "Telling speakers apart by channel needs a recording with several channels; for a mono one use speakers=auto.",
        "按声道区分说话人需要多声道录音；单声道录音请选择自动识别说话人。",
    ),
    # options (OptionError and its codes): 422, the request was read but a value is not allowed
    "bad_option": ErrorCode(422, "An option's value is not allowed.", "参数无效。"),
    "bad_granularity": ErrorCode(
        422, "granularity must be utterance or frame.", "粒度只能是 utterance（整句）或 frame（帧级）。"
    ),
    "bad_labels": ErrorCode(
        422,
        "Invalid label set: choose at least two of the model's labels (like angry,happy,neutral,sad).",
        "标签集无效：请从模型的情绪标签中至少选择两个（如 angry,happy,neutral,sad）。",
    ),
    "bad_sentiment_map": ErrorCode(
        422,
        'Invalid sentiment mapping: a JSON object is needed, like {"surprised": "positive"}.',
        '情感倾向映射无效：需要一个 JSON 对象，如 {"surprised": "positive"}。',
    ),
    "bad_turns": ErrorCode(
        422,
        "The turns file cannot be used (RTTM, WebVTT, SRT or whisper JSON).",
        "说话轮次文件无法使用（RTTM、WebVTT、SRT 或 whisper JSON）。",
    ),
    # requests, models and files of your own
    "bad_request": ErrorCode(400, "The request is malformed.", "请求无效。"),
    "bad_zip": ErrorCode(400, "Not a readable zip archive.", "不是有效的 zip 压缩包。"),
    "bad_dataset": ErrorCode(400, "The labelled data cannot be used.", "带标签的数据无法使用。"),
    "bad_head": ErrorCode(
        400,
        "The classifier head cannot be used: missing, unreadable or made for another model.",
        "分类头无法使用：缺失、无法读取或属于另一个模型。",
    ),
    "model_load": ErrorCode(503, "The model could not be loaded.", "模型无法加载。", close=1011),
    "model_exists": ErrorCode(
        409, "A model of that name exists already on this server; choose another name.", "此服务器上已有同名模型；请换一个名称。"
    ),
    "job_running": ErrorCode(
        409, "A fine-tune is running; wait for it to finish, or cancel it.", "已有微调任务在运行；请等待其完成，或先取消它。"
    ),
    "unknown_model": ErrorCode(
        400,
        "No model of that name is served here; /api/health lists the served models.",
        "此服务器没有该名称的模型；/api/health 列出了可用的模型。",
    ),  # fmt: skip
    "missing_dependency": ErrorCode(
        500, "A package this needs is not installed (the message names it).", "缺少所需的软件包（英文说明中有其名称）。"
    ),
    "ray_connect": ErrorCode(503, "Cannot join the Ray cluster.", "无法连接 Ray 集群。"),
    # the live stream (/api/stream)
    "busy": ErrorCode(503, "Every live session is taken; try again later.", "实时会话已满，请稍后再试。", close=1013),
    "bad_settings": ErrorCode(400, "The live settings are invalid.", "实时设置无效。"),
    "bad_frame": ErrorCode(400, "The audio message is invalid.", "音频数据块无效。"),
    "frame_too_large": ErrorCode(413, "The audio message is too large.", "音频数据块太大。", close=1009),
    "bad_message": ErrorCode(400, "The message is invalid.", "消息无效。"),
    "idle": ErrorCode(
        408, "No message from the client for too long; the take is discarded.", "客户端长时间没有发送数据，本段录音已丢弃。"
    ),
    "discarded": ErrorCode(
        409, "The live take was discarded (closed or idle too long).", "本段实时录音已被丢弃（已关闭或空闲太久）。"
    ),
    "slow_consumer": ErrorCode(
        400, "The client stopped reading the results; the take is discarded.", "客户端没有及时读取结果，本段录音已丢弃。"
    ),
    # the server's front door and the MCP tools
    "internal": ErrorCode(500, "Internal server error; see the server's log.", "服务器内部错误，请查看服务器日志。", close=1011),
    "unauthorized": ErrorCode(401, "Authentication required.", "需要登录。"),
    "bad_key": ErrorCode(401, "The API key is not valid (unknown or revoked).", "API 密钥无效（未知或已撤销）。"),
    "results_need_login": ErrorCode(
        403,
        "Results are listed per user, and this server has no logins: start it with --users or --auth.",
        "结果按用户列出，而此服务器没有登录：请用 --users 或 --auth 启动。",
    ),
    "rate_limited": ErrorCode(
        429, "Too many requests from this user; wait a moment and try again.", "该用户请求过于频繁，请稍候再试。", close=1013
    ),
    "too_many_running": ErrorCode(
        429,
        "This user has too many requests running at once; wait for one to finish.",
        "该用户同时进行的请求过多，请等待其中一个完成。",
        close=1013,
    ),
    "bad_users": ErrorCode(400, "The users file cannot be used.", "用户文件无法使用。"),
    "forbidden": ErrorCode(403, "Access denied.", "禁止访问。"),
    "cors_forbidden": ErrorCode(403, "Cross-origin requests from this origin are not allowed.", "不允许来自该来源的跨域请求。"),
    "bad_host": ErrorCode(421, "This server does not answer to that host name.", "本服务器不响应该主机名。"),
    "method_not_allowed": ErrorCode(405, "Method not allowed.", "不支持该请求方法。"),
    "timeout": ErrorCode(408, "The request did not arrive in time.", "请求超时：请求内容未能按时到达。"),
    "too_many_attempts": ErrorCode(
        429, "Too many failed logins from this address; try again later.", "此地址登录失败次数过多，请稍后再试。"
    ),
    "unavailable": ErrorCode(503, "The service is unavailable.", "服务暂时不可用。"),
    "disk_full": ErrorCode(
        507,
        "The server's disk is full: the result could not be written; try again later.",
        "服务器磁盘已满，结果无法写入，请稍后再试。",
        close=1011,
    ),
    "memory_busy": ErrorCode(
        503,
        "The server is busy: its memory is taken by other long analyses; try again in a moment.",
        "服务器繁忙：内存已被其他长时间分析占用，请稍后再试。",
        close=1013,
    ),
    "http_error": ErrorCode(400, "The request failed.", "请求失败。"),
    "url_not_allowed": ErrorCode(
        403,
        "This server does not fetch URLs; send the audio as a base64 data URL.",
        "本服务器不抓取网址；请以 base64 data URL 发送音频。",
    ),
    "fetch_failed": ErrorCode(502, "Fetching the audio's URL failed.", "获取音频网址失败。"),
}

# Every warning code (audio/samples.py, longform.py): the result is given with a caveat.
WARNINGS: dict[str, WarningCode] = {
    "short": WarningCode(
        "The audio is very short (under 1 s); the result may be unreliable.", "音频很短（不足 1 秒），结果可能不可靠。"
    ),
    "silent": WarningCode("The audio is almost silent; the result says little.", "音频几乎无声，结果参考价值有限。"),
    "no_speech": WarningCode(
        "No speech was found; try a lower VAD threshold or fixed windows.", "没有检测到语音；可降低 VAD 阈值或改用固定窗口。"
    ),
}


def error_code(code: str | None) -> ErrorCode:
    """The registry's entry for `code`; the generic "error" for None or a code it lacks."""
    return ERRORS.get(code or "error", ERRORS["error"])
