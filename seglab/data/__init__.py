"""The data wing: data sets as researchers have them, made into what a `dataset=` option reads.

`prepare` runs the installed mmsegmentation's converters on a public data set's downloads
(`seglab data prepare`; `recipes` holds each data set's converter, downloads and packages),
`inventory` reads every file of every split of a composed config (`seglab data check`),
`palette` turns colour masks into class-index masks (`seglab data palette`); `command`
dispatches the `seglab data` subcommands.

May import: the ground on top, the config and checks wings. Not `run/` or `zoo/`.
"""
