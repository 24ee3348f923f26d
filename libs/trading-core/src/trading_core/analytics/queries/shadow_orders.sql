-- Shadow simulation per order: each order the router sent to a network venue with the paper
-- venue's model of it (shadow_executions, execution.shadow) beside what the venue did (fills).
-- One row per shadowed order sent in the period.
-- @day_start TIMESTAMP: the period's first instant (UTC)
-- @day_end TIMESTAMP: the first instant after the period
-- @account STRING NULL: one account, or NULL for every account
--
-- model_price and real_price: the average fill price of the model and of the venue (NULL: none
-- filled). price_error_bps: how much worse the venue's average price was than the model's, for
-- the trader (positive: reality cost more than the model said), in basis points of the arrival
-- mid. time_error_ms: the venue's first fill less the model's, in milliseconds (positive:
-- reality was slower). real_latency_ms: from the send to the venue's first fill.
-- real_slippage_bps and real_slippage_mid_bps: the venue's average price against the arrival
-- touch (the price the paper venue slips from) and against the arrival mid, positive a cost.
-- Fill rates: filled over ordered quantity. Ratios are FLOAT64 (statistics, for display).
WITH model AS (
  SELECT
    order_id,
    ANY_VALUE(account_id) AS account_id,
    ANY_VALUE(instrument) AS instrument,
    ANY_VALUE(venue) AS venue,
    ANY_VALUE(side) AS side,
    ANY_VALUE(order_type) AS order_type,
    ANY_VALUE(order_quantity) AS quantity,
    MIN(send_time) AS send_time,
    ANY_VALUE(arrival_price) AS arrival_price,
    ANY_VALUE(arrival_mid) AS arrival_mid,
    SUM(IFNULL(quantity, 0)) AS filled_quantity,
    SUM(CAST(quantity AS FLOAT64) * CAST(price AS FLOAT64)) AS notional,
    MIN(IF(trade_id IS NULL, NULL, model_time)) AS first_fill_time
  FROM trading.shadow_executions
  WHERE send_time >= @day_start AND send_time < @day_end
    AND (@account IS NULL OR account_id = @account)
  GROUP BY order_id
),
venue_fills AS (
  SELECT
    order_id,
    SUM(quantity) AS filled_quantity,
    SUM(CAST(notional AS FLOAT64)) AS notional,
    MIN(event_time) AS first_fill_time
  FROM trading.fills
  WHERE event_time >= @day_start AND order_id IN (SELECT order_id FROM model)
  GROUP BY order_id
),
prices AS (
  SELECT
    m.*,
    DATE(m.send_time) AS day,
    IF(m.side = 'BUY', 1, -1) AS sign,
    IFNULL(f.filled_quantity, 0) AS real_filled_quantity,
    f.first_fill_time AS real_first_fill_time,
    m.notional / NULLIF(CAST(m.filled_quantity AS FLOAT64), 0) AS model_price,
    f.notional / NULLIF(CAST(f.filled_quantity AS FLOAT64), 0) AS real_price
  FROM model AS m
  LEFT JOIN venue_fills AS f USING (order_id)
)
SELECT
  order_id, account_id, instrument, venue, day, side, order_type, quantity,
  send_time, arrival_price, arrival_mid,
  filled_quantity AS model_filled_quantity,
  real_filled_quantity,
  model_price, real_price,
  SAFE_DIVIDE(CAST(filled_quantity AS FLOAT64), CAST(quantity AS FLOAT64)) AS model_fill_rate,
  SAFE_DIVIDE(CAST(real_filled_quantity AS FLOAT64), CAST(quantity AS FLOAT64)) AS real_fill_rate,
  sign * (real_price - model_price) / CAST(arrival_mid AS FLOAT64) * 10000 AS price_error_bps,
  TIMESTAMP_DIFF(real_first_fill_time, first_fill_time, MICROSECOND) / 1000 AS time_error_ms,
  TIMESTAMP_DIFF(real_first_fill_time, send_time, MICROSECOND) / 1000 AS real_latency_ms,
  sign * (real_price - CAST(arrival_price AS FLOAT64)) / CAST(arrival_price AS FLOAT64) * 10000
    AS real_slippage_bps,
  sign * (real_price - CAST(arrival_mid AS FLOAT64)) / CAST(arrival_mid AS FLOAT64) * 10000
    AS real_slippage_mid_bps
FROM prices
ORDER BY send_time, order_id
