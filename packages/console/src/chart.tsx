import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface Series {
  label: string;
  values: number[];
  /** A CSS colour for the line. */
  stroke: string;
}

/**
 * A time chart drawn by uPlot on a canvas: `x` in milliseconds, one line per series. The plot is made
 * once and fed new data on every render, so a live view redraws without flicker.
 */
export function TimeChart({
  title,
  x,
  series,
  height = 180,
}: {
  title: string;
  x: number[];
  series: Series[];
  height?: number;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = series.map((s) => s.label).join('\u0000');
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const p = new uPlot(
      {
        title,
        width: Math.max(320, el.clientWidth || 560),
        height,
        scales: { x: { time: true } },
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2 }))],
        axes: [{}, { size: 48 }],
      },
      [x.map((t) => t / 1000), ...series.map((s) => s.values)],
      el,
    );
    plot.current = p;
    return () => {
      p.destroy();
      plot.current = null;
    };
  }, [shape, title, height]);
  useEffect(() => {
    plot.current?.setData([x.map((t) => t / 1000), ...series.map((s) => s.values)]);
  }, [x, series]);
  return <div class="chart" ref={box} role="img" aria-label={title} />;
}
