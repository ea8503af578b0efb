"""The page's words in English and Chinese, and errors in the user's language."""

from __future__ import annotations

from ..errors import EmotionAppError

LANGS = ("en", "zh")

TEXT: dict[str, dict[str, str]] = {
    "title": {"en": "Speech emotion recognition", "zh": "语音情感识别"},
    "subtitle": {
        "en": "emotion2vec+ · upload or record speech, get the emotion, all 9 scores and a timeline",
        "zh": "emotion2vec+ · 上传或录制语音，得到情感、全部 9 类得分和时间线",
    },
    "language": {"en": "Language / 语言", "zh": "Language / 语言"},
    "upload": {"en": "Audio or video file", "zh": "音频或视频文件"},
    "record": {"en": "Or record from the microphone", "zh": "或用麦克风录音"},
    "example": {"en": "Load an example clip", "zh": "载入示例音频"},
    "granularity": {"en": "Granularity", "zh": "粒度"},
    "utterance": {"en": "utterance", "zh": "整句"},
    "frame": {"en": "frame (50 per second)", "zh": "帧级（每秒 50 帧）"},
    "embedding": {"en": "Extract embedding (embedding.npy)", "zh": "提取特征向量（embedding.npy）"},
    "start": {"en": "Start recognition", "zh": "开始识别"},
    "result": {"en": "Result", "zh": "识别结果"},
    "scores": {"en": "All 9 scores", "zh": "全部 9 类得分"},
    "timeline": {"en": "Per-frame scores over time (s)", "zh": "逐帧得分随时间变化（秒）"},
    "dominant": {"en": "Dominant emotion over time", "zh": "随时间变化的主要情感"},
    "log": {"en": "Processing log", "zh": "处理日志"},
    "downloads": {"en": "Downloads", "zh": "下载"},
    "json": {"en": "result.json", "zh": "result.json"},
    "confidence": {"en": "confidence", "zh": "置信度"},
    "no_result": {"en": "Upload or record audio, then press Start.", "zh": "请上传或录制音频，然后点击“开始识别”。"},
    "model_loading": {"en": "Model: {model} on {device}", "zh": "模型：{model}，设备：{device}"},
    "model_error": {"en": "The model could not be loaded: {error}", "zh": "模型无法加载：{error}"},
    "frame_only": {"en": "Choose frame granularity to see the timeline.", "zh": "选择帧级粒度即可查看时间线。"},
    "log_file": {"en": "File", "zh": "文件"},
    "log_format": {"en": "Container / codec", "zh": "容器 / 编码"},
    "log_source": {"en": "Original", "zh": "原始音频"},
    "log_duration": {"en": "Duration", "zh": "时长"},
    "log_resampled": {"en": "Resampling", "zh": "重采样"},
    "log_device": {"en": "Model / device", "zh": "模型 / 设备"},
    "log_time": {"en": "Inference time", "zh": "推理时间"},
    "log_folder": {"en": "Output folder", "zh": "输出文件夹"},
    "log_warnings": {"en": "Warnings", "zh": "提示"},
    "resampled_yes": {"en": "{rate} Hz -> 16000 Hz mono", "zh": "{rate} Hz -> 16000 Hz 单声道"},
    "resampled_no": {"en": "none (already 16000 Hz), mono", "zh": "无需（已是 16000 Hz），单声道"},
    "channels": {"en": "{rate} Hz, {channels} channel(s)", "zh": "{rate} Hz，{channels} 个声道"},
    "mixed": {"en": "Mixed", "zh": "混合情感"},
    "margin": {"en": "margin over the second", "zh": "领先第二名"},
    "smoothing": {"en": "Frame smoothing", "zh": "帧平滑"},
    "method": {"en": "Method", "zh": "方法"},
    "m_none": {"en": "none (raw frames)", "zh": "不平滑（原始帧）"},
    "m_majority": {"en": "majority vote", "zh": "多数投票"},
    "m_moving_average": {"en": "moving average", "zh": "滑动平均"},
    "m_ewma": {"en": "EWMA", "zh": "指数加权平均（EWMA）"},
    "window": {"en": "Window (frames, 20 ms each)", "zh": "窗口（帧，每帧 20 毫秒）"},
    "alpha": {"en": "EWMA alpha", "zh": "EWMA 系数 alpha"},
    "zero_phase": {"en": "Zero-phase (no time shift)", "zh": "零相位（不产生时间偏移）"},
    "min_duration": {"en": "Minimum segment (s)", "zh": "最短片段（秒）"},
    "view": {"en": "Timeline shows", "zh": "时间线显示"},
    "view_smoothed": {"en": "smoothed", "zh": "平滑后"},
    "view_raw": {"en": "raw", "zh": "原始"},
    "segments": {"en": "Segments", "zh": "情感片段"},
    "summary": {"en": "Summary", "zh": "概要"},
    "share": {"en": "Share of time", "zh": "时间占比"},
    "segments_n": {"en": "Segments", "zh": "片段数"},
    "changes_per_min": {"en": "changes per minute", "zh": "每分钟变化次数"},
    "from_frames": {"en": "From the frames", "zh": "由帧得出"},
    "rising": {"en": "Rising most", "zh": "上升最快"},
    "col_start": {"en": "start (s)", "zh": "开始（秒）"},
    "col_end": {"en": "end (s)", "zh": "结束（秒）"},
    "col_emotion": {"en": "emotion", "zh": "情感"},
    "col_confidence": {"en": "confidence", "zh": "置信度"},
    "tab_analyze": {"en": "Analyze", "zh": "分析"},
    "tab_compare": {"en": "Compare clips", "zh": "对比多段音频"},
    "compare_files": {"en": "Two or more audio files", "zh": "两个或更多音频文件"},
    "compare_start": {"en": "Compare", "zh": "开始对比"},
    "compare_need": {"en": "Upload at least two files to compare.", "zh": "请至少上传两个文件进行对比。"},
    "radar": {"en": "Score distributions", "zh": "得分分布"},
    "similarity": {"en": "Embedding cosine similarity", "zh": "特征向量余弦相似度"},
    "compare_table": {"en": "Clips", "zh": "音频列表"},
    "speech": {"en": "Speech", "zh": "语音时长"},
    "transitions": {"en": "Transitions", "zh": "情感转换"},
    "tab_long": {"en": "Long recording", "zh": "长录音"},
    "tab_batch": {"en": "Batch", "zh": "批量处理"},
    "long_file": {"en": "A long recording (meeting, call, interview)", "zh": "长录音（会议、通话、访谈）"},
    "segmentation": {"en": "Segmentation", "zh": "切分方式"},
    "seg_vad": {"en": "voice activity (speech segments)", "zh": "语音活动检测（按语句）"},
    "seg_window": {"en": "fixed windows", "zh": "固定窗口"},
    "seg_none": {"en": "none (each file whole)", "zh": "不切分（整个文件）"},
    "seg_options": {"en": "Segmentation options", "zh": "切分参数"},
    "vad_threshold": {"en": "VAD threshold (speech probability)", "zh": "VAD 阈值（语音概率）"},
    "min_speech": {"en": "Minimum speech (s)", "zh": "最短语音（秒）"},
    "min_silence": {"en": "Minimum silence that splits (s)", "zh": "切分所需最短静音（秒）"},
    "max_segment": {"en": "Maximum segment (s)", "zh": "最长片段（秒）"},
    "window_s": {"en": "Window length (s)", "zh": "窗口长度（秒）"},
    "hop_s": {"en": "Window hop (s)", "zh": "窗口步长（秒）"},
    "long_start": {"en": "Analyze recording", "zh": "分析录音"},
    "batch_files": {"en": "Audio files or zip archives", "zh": "音频文件或 zip 压缩包"},
    "batch_start": {"en": "Run batch", "zh": "开始批量处理"},
    "batch_table": {"en": "Results", "zh": "结果"},
    "batch_need": {"en": "Upload at least one file.", "zh": "请至少上传一个文件。"},
    "batch_done": {"en": "{ok} done, {failed} failed, {total} files", "zh": "完成 {ok} 个，失败 {failed} 个，共 {total} 个文件"},
    "progress_files": {"en": "Files", "zh": "文件"},
    "progress_decode": {"en": "Decoding audio", "zh": "正在解码音频"},
    "progress_model": {"en": "Running the model", "zh": "正在运行模型"},
}

# Chinese sentences for error and warning codes; the English message follows as detail.
ZH_ERRORS = {
    "empty": "文件为空，没有音频内容。",
    "not_audio": "无法解码：这不是可识别的音频或视频文件。支持 WAV、MP3、M4A、FLAC、OGG、OPUS、WEBM 及视频中的音轨。",
    "no_audio_track": "该文件没有音轨。",
    "corrupt": "音频流已损坏或被截断。",
    "truncated": "文件已被截断或损坏：文件头声明的长度与实际内容不符。",
    "bad_rate": "采样率无效。",
    "not_finite": "音频包含 NaN 或无穷大的采样值，文件已损坏。",
    "too_long": "音频太长，超过了时长上限。请剪短后再试。",
    "too_short": "音频太短：模型至少需要 25 毫秒。",
    "too_large": "文件太大，超过了上传大小上限。",
    "no_audio": "没有音频：请先上传或录制。",
    "bad_granularity": "粒度只能是 utterance（整句）或 frame（帧级）。",
    "bad_option": "参数无效。",
    "model_load": "模型无法加载。",
    "short": "音频很短（不足 1 秒），结果可能不可靠。",
    "silent": "音频几乎无声，结果参考价值有限。",
    "no_speech": "没有检测到语音；可降低 VAD 阈值或改用固定窗口。",
    "bad_zip": "不是有效的 zip 压缩包。",
}


def t(key: str, lang: str = "en", **kw) -> str:
    text = TEXT[key].get(lang) or TEXT[key]["en"]
    return text.format(**kw) if kw else text


def error_message(exc: EmotionAppError, lang: str = "en") -> str:
    """The error for the page: English as raised, or a Chinese sentence with the English detail."""
    if lang == "zh" and exc.code in ZH_ERRORS:
        return f"{ZH_ERRORS[exc.code]}（{exc.message}）"
    return exc.message


def warning_message(code: str, message: str, lang: str = "en") -> str:
    return ZH_ERRORS.get(code, message) if lang == "zh" else message
