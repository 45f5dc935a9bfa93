"""Demo assets on top of the evaluation library: the one model loader
(:mod:`~captum_gfi.demo.models`), the bundled sample photos (:mod:`~captum_gfi.demo.photos`)
and the one toy network shared by the commands and the tests (:mod:`~captum_gfi.demo.toy`)."""
