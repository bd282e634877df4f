"""``microseg demo``: the whole product on the bundled data, live in a terminal.

`stream.demo.run` starts the broker and a worker and drives the replay (the entry point);
`stream.demo.data` puts the bundled files on one timeline and paces them; `stream.demo.feed`
reads the worker's HTTP views and the output topics; `stream.demo.state` and `stream.demo.view`
hold and show what the demo knows (pure, unit-tested).
"""
