"""One router per resource; each route parses/validates, calls one or two RPCs, shapes the answer."""
