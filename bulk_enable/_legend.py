"""What each status and each report column means, in English and Russian: one table each, read by
the workbook's cells and its Statuses and Columns sheets, and by the messages."""

from __future__ import annotations

from dataclasses import dataclass

from ._model import Status


@dataclass(frozen=True, slots=True)
class StatusWords:
    """A status for people: a few words for a cell, and a sentence for the legend, in English and Russian."""

    short: str
    short_ru: str
    meaning: str
    meaning_ru: str


# The one table of what each status means (the workbook's cells, its Statuses sheet, the summary).
STATUS_WORDS: dict[Status, StatusWords] = {
    Status.ENABLED: StatusWords(
        "enabled now",
        "включено сейчас",
        "The window was switched on by this run.",
        "Окно включено этим запуском.",
    ),
    Status.DISABLED: StatusWords(
        "disabled now",
        "выключено сейчас",
        "The window was switched off by this run.",
        "Окно выключено этим запуском.",
    ),
    Status.ALREADY_ENABLED: StatusWords(
        "was already enabled",
        "уже было включено",
        "The plan showed the window already on; nothing sent.",
        "Окно уже было включено.",
    ),
    Status.ALREADY_DISABLED: StatusWords(
        "was already disabled",
        "уже было выключено",
        "The plan showed the window already off; nothing sent.",
        "Окно уже было выключено.",
    ),
    Status.WOULD_ENABLE: StatusWords(
        "will be enabled by a run",
        "будет включено при запуске",
        "A plan: a run will switch the window on.",
        "План: запуск включит окно.",
    ),
    Status.WOULD_DISABLE: StatusWords(
        "will be disabled by a run",
        "будет выключено при запуске",
        "A plan: a run will switch the window off.",
        "План: запуск выключит окно.",
    ),
    Status.READ_ONLY: StatusWords(
        "no edit access with this token",
        "нет прав на изменение",
        "This token can see the counter but not change it.",
        "Токен видит счётчик, но не может его менять.",
    ),
    Status.NOT_FOUND: StatusWords(
        "not visible to this token",
        "счётчик не найден",
        "This token does not see the counter (for agency access, set ulogin).",
        "Токен не видит счётчик (для представительского доступа укажите ulogin).",
    ),
    Status.FAILED: StatusWords(
        "failed: see the message",
        "ошибка: см. сообщение",
        "Metrica refused or kept failing; the message says why. A refusal of the counter (access denied, "
        "not found) is not sent again until it is fixed and the run is given --retry-failed; a fault "
        "(no answer, a server error) is sent again by the next run.",
        "Метрика отказала или не ответила; причина в сообщении. Отказ по счётчику (нет доступа, не найден) "
        "повторно не отправляется, пока его не исправят и не запустят с --retry-failed; сбой (нет ответа, "
        "ошибка сервера) следующий запуск отправит снова.",
    ),
    Status.DEFERRED: StatusWords(
        "not done yet: run again",
        "ещё не сделано: запустите снова",
        "Not done yet (quota, stop, interruption). Run the same command again.",
        "Ещё не сделано (квота, остановка, прерывание). Запустите ту же команду снова.",
    ),
    Status.FULL: StatusWords(
        "full 21-day window",
        "полное окно 21 день",
        "Calls up to 21 days old can be joined to visits.",
        "Звонки до 21 дня давности привязываются к визитам.",
    ),
    Status.GROWING: StatusWords(
        "window growing to 21 days",
        "окно растёт до 21 дня",
        "The window grows one day a day; full_on says when it reaches 21 days.",
        "Окно растёт на один день каждый день; full_on — когда оно достигнет 21 дня.",
    ),
    Status.SHORT: StatusWords(
        "window not extended",
        "окно не расширено",
        "Not extended (or extended in the last day). Enabling it again is very likely harmless.",
        "Не расширено (или включено за последние сутки). Повторное включение почти наверняка безвредно.",
    ),
}


STATUS_LEGEND: tuple[tuple[str, str, str], ...] = tuple(
    (status.value, words.meaning, words.meaning_ru) for status, words in STATUS_WORDS.items()
)


COLUMN_LEGEND: tuple[tuple[str, str, str], ...] = (
    ("counter_id", "The counter (tag) ID.", "Номер счётчика (тега)."),
    (
        "label",
        "The label from the job file (a plan: else the counter's name in Metrica).",
        "Подпись из файла задачи (в плане: если её нет, название счётчика в Метрике).",
    ),
    (
        "account",
        "The account of the job file (default: the only one).",
        "Аккаунт из файла задачи (default — единственный).",
    ),
    (
        "status",
        "What happened; the Statuses sheet explains each.",
        "Что произошло; лист Statuses объясняет каждый статус.",
    ),
    (
        "attempts",
        "Requests sent for this counter, quota answers included.",
        "Сколько запросов ушло на счётчик, включая ответы о квоте.",
    ),
    ("since", "The day the extended window started.", "День, с которого действует расширенное окно."),
    (
        "days",
        "Full days of the window so far (21 is full).",
        "Сколько полных дней окну сейчас (21 — полное).",
    ),
    ("full_on", "The day the window reaches 21 days.", "День, когда окно дорастёт до 21 дня."),
    ("http_status", "The HTTP status of Metrica's last answer.", "HTTP-статус последнего ответа Метрики."),
    ("error_type", "Metrica's error type, when it refused.", "Тип ошибки Метрики, если она отказала."),
    (
        "message",
        "Metrica's message or the tool's explanation (in English).",
        "Сообщение Метрики или пояснение утилиты (по-английски).",
    ),
    ("finished_at", "When the counter was done, UTC.", "Когда счётчик обработан, по UTC."),
    ("checked_at", "When the state was read, UTC.", "Когда прочитано состояние, по UTC."),
)


def status_words(code: str, lang: str | None = None) -> str:
    """A status as a client reads it in the workbook: in Russian (by default) or English, then the code."""
    try:
        words = STATUS_WORDS[Status(code)]
    except ValueError:  # not a status (a journal from a newer version): as it is
        return code
    return f"{words.short if lang == 'en' else words.short_ru} ({code})"
