"""``microseg demo``: the whole product on the bundled data, live in a terminal.

`stream.demo.run` starts the broker and a worker (the entry point); `stream.demo.drive` runs the
replay and decides when it has settled; `stream.demo.data` puts the bundled files on one timeline
and paces them; `stream.demo.feed` reads the worker's HTTP views and the output topics;
`stream.demo.state` and `stream.demo.view` hold and show what the demo knows (pure, unit-tested).
"""
