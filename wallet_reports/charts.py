"""Charts of the report DataFrames, labelled in Chinese and English, one function per kind.

Each function draws one figure from a frame of `wallet_reports.queries` and returns it; they
reshape only for drawing (a pivot), never compute a figure of their own.
"""

import importlib.util
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib import font_manager
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter

# Noto Sans CJK SC has Latin and CJK glyphs; the mplfonts wheel ships it, so no system font
# package is needed on a fresh machine.
CJK_FONT_PACKAGE = "mplfonts"
CJK_FONT_FILE = Path("fonts") / "NotoSansCJKsc-Regular.otf"
CJK_FONT_NAME = "Noto Sans CJK SC"
WIDE = (10, 4.5)


def cjk_font_path() -> Path:
    spec = importlib.util.find_spec(CJK_FONT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"the {CJK_FONT_PACKAGE} package (a CJK font for charts) is missing")
    return Path(next(iter(spec.submodule_search_locations))) / CJK_FONT_FILE


def use_cjk_font() -> None:
    """Draw every chart with a font that has Chinese glyphs (no empty boxes for 已开通)."""
    path = cjk_font_path()
    if CJK_FONT_NAME not in {font.name for font in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(str(path))
    plt.rcParams["font.family"] = "sans-serif"
    plt.rcParams["font.sans-serif"] = [CJK_FONT_NAME, "DejaVu Sans"]
    # The font's minus sign is the ASCII hyphen's width; keep axes from asking for U+2212.
    plt.rcParams["axes.unicode_minus"] = False


use_cjk_font()


def status_name(
    frame: pd.DataFrame, code: str = "status", label: str = "status_label"
) -> pd.Series:
    """'已开通 success': the label users see, then the code analysts filter on."""
    return frame[label] + " " + frame[code].astype(str)


def _axis_name(column: str) -> str:
    return column.removesuffix("_label").replace("_", " ")


def _money(value, _position=None) -> str:
    return f"¥{value:,.0f}"


def _finish(figure: Figure, axes, title: str, note: str | None = None) -> Figure:
    axes.set_title(title)
    axes.spines[["top", "right"]].set_visible(False)
    if note:
        axes.set_axis_off()
        axes.text(0.5, 0.5, note, transform=axes.transAxes, ha="center", va="center", color="grey")
    figure.tight_layout()
    return figure


def status_bars(
    frame: pd.DataFrame, value: str, title: str, *, xlabel: str | None = None
) -> Figure:
    """One horizontal bar per status (vocabulary order, top down), each marked with its value."""
    figure, axes = plt.subplots(figsize=WIDE)
    names = status_name(frame)
    bars = axes.barh(names, frame[value], color="tab:blue")
    axes.invert_yaxis()
    money = value.endswith("_cny")
    axes.bar_label(bars, labels=[_money(v) if money else f"{v:,}" for v in frame[value]], padding=3)
    axes.set_xlabel(xlabel or value)
    if money:
        axes.xaxis.set_major_formatter(FuncFormatter(_money))
    return _finish(figure, axes, title)


def stacked_shares(
    frame: pd.DataFrame, group: str, value: str, title: str, *, xlabel: str = "share"
) -> Figure:
    """One bar per `group` (e.g. record type), split by status into shares of its total."""
    shown = frame.assign(status_name=status_name(frame))
    table = shown.pivot_table(
        index=group, columns="status_name", values=value, aggfunc="sum", sort=False
    ).fillna(0)
    table = table.loc[:, table.sum() > 0]
    figure, axes = plt.subplots(figsize=WIDE)
    left = pd.Series(0.0, index=table.index)
    totals = table.sum(axis=1).replace(0, 1)
    for column in table.columns:
        shares = table[column] / totals
        axes.barh(table.index.astype(str), shares, left=left, label=column)
        left += shares
    axes.invert_yaxis()
    axes.xaxis.set_major_formatter(PercentFormatter(1.0))
    axes.set_xlabel(xlabel)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _finish(figure, axes, title)


def monthly_mix(frame: pd.DataFrame, value: str, title: str, *, ylabel: str) -> Figure:
    """Counts per status at each month's end, stacked: how the mix moves over time."""
    shown = frame.assign(status_name=status_name(frame))
    return monthly_stack(shown, "status_name", value, title, ylabel=ylabel, xlabel="month (end of)")


def monthly_stack(
    frame: pd.DataFrame,
    series: str,
    value: str,
    title: str,
    *,
    ylabel: str,
    xlabel: str = "month",
) -> Figure:
    """`value` per `series` (a status, a plan) over the months, stacked into one total."""
    figure, axes = plt.subplots(figsize=WIDE)
    if frame.empty:
        return _finish(figure, axes, title, "no data in this period")
    table = frame.pivot_table(
        index="month", columns=series, values=value, aggfunc="sum", sort=False
    ).fillna(0)
    axes.stackplot(table.index, table.T.to_numpy(), labels=[str(c) for c in table.columns])
    if value.endswith("_cny"):
        axes.yaxis.set_major_formatter(FuncFormatter(_money))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _finish(figure, axes, title)


def monthly_heatmap(frame: pd.DataFrame, series: str, value: str, title: str) -> Figure:
    """A rate per `series` (row) and month (column), darker when higher; blank for no data.

    Easier to read than one line per series when many months have only a few plans.
    """
    figure, axes = plt.subplots(figsize=WIDE)
    if frame.empty:
        return _finish(figure, axes, title, "no data in this period")
    table = frame.pivot_table(index=series, columns="month", values=value, aggfunc="sum")
    months = pd.date_range(table.columns.min(), table.columns.max(), freq="MS")
    table = table.reindex(columns=months)
    image = axes.imshow(
        table.to_numpy(dtype=float),
        aspect="auto",
        cmap="Reds",
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    years = [i for i, month in enumerate(months) if month.month == 1] or [0]
    axes.set_xticks(years, [str(months[i].year) for i in years])
    axes.set_yticks(range(len(table.index)), [str(name) for name in table.index])
    colorbar = figure.colorbar(image, ax=axes, format=PercentFormatter(1.0))
    colorbar.set_label(_axis_name(value))
    axes.set_xlabel("month")
    return _finish(figure, axes, title)


def monthly_lines(
    frame: pd.DataFrame, series: str, value: str, title: str, *, ylabel: str
) -> Figure:
    """One line per `series` (e.g. record type) over the months."""
    figure, axes = plt.subplots(figsize=WIDE)
    if frame.empty:
        return _finish(figure, axes, title, "no data in this period")
    table = frame.pivot_table(index="month", columns=series, values=value, aggfunc="sum")
    for column in table.columns:
        axes.plot(table.index, table[column], marker=".", label=str(column))
    if value.endswith("rate") or value.endswith("share"):
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    elif value.endswith("_cny"):
        axes.yaxis.set_major_formatter(FuncFormatter(_money))
    axes.set_xlabel("month")
    axes.set_ylabel(ylabel)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _finish(figure, axes, title)


def grouped_bars(
    frame: pd.DataFrame, category: str, group: str, value: str, title: str, *, ylabel: str
) -> Figure:
    """Bars of `value` per `category`, side by side per `group` (e.g. age band × record type)."""
    figure, axes = plt.subplots(figsize=WIDE)
    table = frame.pivot_table(
        index=category, columns=group, values=value, aggfunc="sum", sort=False
    ).fillna(0)
    if table.empty or not table.to_numpy().any():
        return _finish(figure, axes, title, "nothing to show")
    table.plot.bar(ax=axes, rot=0)
    if value.endswith("_cny"):
        axes.yaxis.set_major_formatter(FuncFormatter(_money))
    else:
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel(_axis_name(category))
    axes.set_ylabel(ylabel)
    axes.legend(title=_axis_name(group), frameon=False)
    return _finish(figure, axes, title)


def funnel(frame: pd.DataFrame, title: str) -> Figure:
    """The plan funnel: plans reaching each stage, the part moving on, and what stopped there."""
    figure, axes = plt.subplots(figsize=WIDE)
    names = status_name(frame, code="stage_status", label="stage_label")
    axes.barh(names, frame["moved_on"], color="tab:blue", label="moved on")
    axes.barh(
        names,
        frame["stopped_here"],
        left=frame["moved_on"],
        color="tab:orange",
        label="stopped here",
    )
    for position, row in enumerate(frame.itertuples()):
        axes.text(
            row.reached,
            position,
            f" {row.reached:,} ({row.share_of_all:.0%} of all)",
            va="center",
        )
    axes.invert_yaxis()
    axes.set_xlabel("plans")
    axes.set_xlim(0, max(frame["reached"].max(), 1) * 1.3)
    axes.legend(frameon=False, loc="lower right")
    return _finish(figure, axes, title)


def category_bars(
    frame: pd.DataFrame, category: str, value: str, title: str, *, xlabel: str
) -> Figure:
    """One horizontal bar per row, named by `category` (e.g. quarantine reasons)."""
    figure, axes = plt.subplots(figsize=WIDE)
    if frame.empty:
        return _finish(figure, axes, title, "nothing to show")
    bars = axes.barh(frame[category].astype(str), frame[value], color="tab:blue")
    axes.bar_label(bars, labels=[f"{v:,}" for v in frame[value]], padding=3)
    axes.invert_yaxis()
    axes.set_xlabel(xlabel)
    return _finish(figure, axes, title)
