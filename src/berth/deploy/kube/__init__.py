"""berth.deploy.kube"""
