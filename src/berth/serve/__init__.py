"""`berth serve`: the operator's overview in a browser, over the same Backend the CLI uses.

`fleet` reads what the backend knows (ps, history, files of each instance), `overview` polls it
once a second and pushes the changes to every open page, `app` is the web application,
`security` / `audit` guard and record the actions, `alerts` notices incidents and calls
webhooks, `pvs` finds which instance serves a PV, `metrics` is Prometheus' view.

Starlette and uvicorn are the optional extra `berth[serve]`; nothing outside this package and
`berth.cli.serve` imports them, so the other commands never pay for them.
"""
