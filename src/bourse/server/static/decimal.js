// Exact decimal strings: prices and shares arrive as text (e.g. "512.3")
// and must be shown digit for digit. These helpers compare and subtract
// them with BigInt, so nothing is ever rounded through a float.

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

function parse(text) {
  const match = DECIMAL.exec(text);
  if (!match) throw new Error(`not a decimal: ${text}`);
  const [, sign, whole, fraction = ""] = match;
  const units = BigInt(whole + fraction);
  return { units: sign ? -units : units, scale: fraction.length };
}

function aligned(a, b) {
  const left = parse(a);
  const right = parse(b);
  const scale = Math.max(left.scale, right.scale);
  return {
    left: left.units * 10n ** BigInt(scale - left.scale),
    right: right.units * 10n ** BigInt(scale - right.scale),
    scale,
  };
}

/** -1, 0 or 1 as a is below, equal to or above b. */
export function compareDecimals(a, b) {
  const { left, right } = aligned(a, b);
  return left < right ? -1 : left > right ? 1 : 0;
}

function format(units, scale) {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, "");
  return (negative ? "-" : "") + whole + (fraction ? `.${fraction}` : "");
}

/** a - b, exactly, written without trailing zeros. */
export function subtractDecimals(a, b) {
  const { left, right, scale } = aligned(a, b);
  return format(left - right, scale);
}

/** A float for plotting and bar widths only, never for display. */
export function plotValue(text) {
  return Number(text);
}
