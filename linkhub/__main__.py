from linkhub.cli.main import cli

cli()
